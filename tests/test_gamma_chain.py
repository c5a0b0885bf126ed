"""End to end with ES 0DTE options: a generated session (synthetic) -> every asset -> the gamma block.

scripts/generate_options_session.py writes the futures side and a 0DTE chain (definitions, open
interest in statistics beside settlement and opening-price records, bbo-1m quotes from Black-76 on
a smile, trades). The data is simulated because no public source holds a multi-hour 0DTE chain; the
real-data tests of each piece are under tests/bronze/test_options_* and tests/silver/test_black76.py.
"""

from __future__ import annotations

import importlib.util
import sys
import warnings
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from spymaster_core.config import SpymasterConfig
from spymaster_assets.silver.feature_names import gamma_columns
from spymaster_resources.lake import Lake

REPO_ROOT = Path(__file__).resolve().parents[1]
SESSION = date(2024, 4, 10)
CONFIG = SpymasterConfig()

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from dagster import DagsterInstance, materialize

    from spymaster_assets.definitions import all_assets
    from spymaster_resources import SpymasterResource

    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    generator = _load("generate_options_session")
    home = tmp_path_factory.mktemp("gamma")
    report = generator.generate_options_session(SESSION, home / "raw" / "GLBX.MDP3", seed=5, strikes=30, scale=0.005, n_trades=300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = materialize(all_assets, partition_key=SESSION.isoformat(), instance=DagsterInstance.ephemeral(), resources={"spymaster": SpymasterResource(home=str(home))})
    assert result.success
    return home, report, generator


def test_a_session_with_options_yields_the_gamma_block(run):
    home, report, _ = run
    lake = Lake(home / "lake")
    chain = lake.read("bronze", "bronze_options_definitions", SESSION)
    assert chain.height == int(report.chain["zero_dte"].sum())  # next-day options stay out
    oi = lake.read("bronze", "bronze_options_open_interest", SESSION)
    expected = report.chain.filter(pl.col("zero_dte")).select("instrument_id", "open_interest").sort("instrument_id")
    assert oi.select(pl.col("instrument_id").cast(expected["instrument_id"].dtype), "open_interest").sort("instrument_id").equals(expected)
    state = lake.read("silver", "silver_level_state", SESSION)
    assert state["feature_families"].unique().to_list() == ["bars+tape+gamma"]
    defined = state.select(pl.col(gamma_columns(CONFIG)).is_not_null().mean())
    for column in ("gex_total", "gex_above_3strikes", "gex_below_3strikes", "call_wall_dist_atr", "put_wall_dist_atr", "dealer_gamma_traded_since_open"):
        assert defined[column][0] > 0.95, column
    episodes = lake.read("gold", "gold_episodes", SESSION)
    assert episodes["feature_families"].unique().to_list() == ["bars+tape+gamma"]


def test_total_gex_matches_the_generators_model_at_an_anchor(run):
    """Our GEX comes from implied vols of rounded quote mids; the generator's truth from its own smile."""
    home, report, generator = run
    state = Lake(home / "lake").read("silver", "silver_level_state", SESSION)
    row = state.filter(pl.col("ts_event").dt.convert_time_zone("America/New_York").dt.strftime("%H:%M") == "10:30").row(0, named=True)
    truth = generator.gex_truth_profile(report, row["ts_event"], CONFIG)
    total_truth = float(truth["gex_bn"].sum())
    assert row["gex_total"] == pytest.approx(total_truth, rel=0.05, abs=0.002)
    # The put wall is the strike of the largest put |GEX| in the model too (ties aside).
    put_wall = float(truth.sort("put_gex")["strike_price"][0])  # put GEX is negative: the most negative
    assert row["put_wall_dist_atr"] == pytest.approx((put_wall - row["level_price"]) / row["atr_points"], abs=5 / row["atr_points"] + 1e-9)
    assert np.isfinite(row["dealer_gamma_traded_since_open"])


def test_a_session_without_options_has_no_gamma_block(run):
    """The other families of the same session are unaffected when the options files are removed."""
    from spymaster_assets.silver.level_state import OptionsInputs, compute_level_state

    home, _, _ = run
    lake = Lake(home / "lake")
    bars, levels = lake.read("silver", "silver_bars", SESSION), lake.read("silver", "silver_levels", SESSION)
    empty = OptionsInputs(chain=lake.read("bronze", "bronze_options_definitions", SESSION).clear(), open_interest=None, bbo=None, trades=None)
    state = compute_level_state(bars, levels, SESSION, CONFIG, options=empty)
    assert state["feature_families"].unique().to_list() == ["bars"]
    assert state.select(pl.all_horizontal(pl.col(gamma_columns(CONFIG)).is_null())).to_series().all()


def test_spymaster_gamma_prints_the_profile_point_in_time(run, capsys):
    import json

    from spymaster_assets.cli import main

    home, report, generator = run
    assert main(["--home", str(home), "gamma", "--date", SESSION.isoformat(), "--time", "10:30", "--json"]) == 0
    profile = json.loads(capsys.readouterr().out)
    truth = generator.gex_truth_profile(report, datetime(2024, 4, 10, 14, 30, tzinfo=timezone.utc), CONFIG)
    near = truth.filter((pl.col("strike_price") - pl.col("forward")).abs() <= 15)
    ours = {row["strike_price"]: row["gex_bn"] for row in profile["strikes"]}
    for strike, gex in near.select("strike_price", "gex_bn").iter_rows():
        assert ours[strike] == pytest.approx(gex, rel=0.05, abs=1e-4), strike  # IVs from quote mids rounded to the tick
    assert profile["futures_price"] == pytest.approx(float(truth["forward"][0]))
    assert main(["--home", str(home), "gamma", "--date", SESSION.isoformat(), "--time", "10:30"]) == 0
    assert "total GEX" in capsys.readouterr().out
    assert main(["--home", str(home), "gamma", "--date", "2024-04-09", "--time", "10:30"]) == 2
    assert "not materialized" in capsys.readouterr().err


def test_futures_tables_ignore_the_options_files_beside_them(run):
    """The options bbo-1m file is the only bbo-1m file: the futures top of book must not claim it."""
    home, _, _ = run
    import pyarrow.parquet as pq

    path = home / "lake" / "bronze" / "bronze_futures_bbo" / f"date={SESSION}" / "part-0.parquet"
    assert pq.ParquetFile(path).metadata.num_rows == 0
    trades = Lake(home / "lake").read("bronze", "bronze_futures_trades", SESSION)
    assert trades.height > 0 and trades["instrument_id"].n_unique() == 1 and trades["source"].unique().to_list() == ["trades"]
