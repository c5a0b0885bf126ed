"""Order-flow and options assets are not materialized for a session whose raw files hold none of their
schemas: the body writes nothing, a backfill leaves them out of the range and the raw-files sensor out
of the session's run, each saying why; silver and gold read the session as before."""

from __future__ import annotations

import re
import shutil
import warnings
from datetime import date

from dagster import AssetKey, DagsterInstance, build_sensor_context

from spymaster_assets.automation.backfill import backfill
from spymaster_assets.availability import OPTIONAL_ASSETS, absent_assets
from spymaster_core.config import SpymasterConfig
from spymaster_resources.raw_files import RawCatalog

from conftest import SHARED_DATA, sample_root

MBO_FILE = SHARED_DATA / "dbn" / "nautilus" / "esh4-glbx-mdp3-20231225.mbo.dbn.zst"


def _bars_only_root(tmp_path, days=("20131006", "20131007", "20131008")):
    return sample_root(tmp_path / "home", stamps=days)


def test_a_bars_only_session_has_no_order_flow_or_options_asset_and_each_reason_names_the_schemas(tmp_path):
    home = _bars_only_root(tmp_path)
    config = SpymasterConfig(home=home)
    absent = absent_assets(RawCatalog(config.raw_dir, config.spec), date(2013, 10, 8), config)
    assert set(absent) == set(OPTIONAL_ASSETS)
    assert absent["bronze_futures_mbp10"] == "no mbp-10 or mbo in raw/ for 2013-10-08"
    assert absent["bronze_futures_trades"] == "no trades, tbbo, mbp-1, mbp-10 or mbo in raw/ for 2013-10-08"
    assert absent["bronze_options_bbo"] == "no options quotes, trades or statistics in raw/ for 2013-10-08"
    # GC has no 0DTE options whatever raw/ holds.
    gc = SpymasterConfig(home=home, products=("ES", "GC")).for_product("GC")
    assert absent_assets(RawCatalog(gc.raw_dir, gc.spec), date(2013, 10, 8), gc)["bronze_options_definitions"].startswith("GC has no 0DTE options")


def test_an_mbo_file_brings_the_trades_book_and_depth_assets_back(tmp_path):
    home = tmp_path / "home"
    (home / "raw" / "GLBX.MDP3").mkdir(parents=True)
    shutil.copy2(MBO_FILE, home / "raw" / "GLBX.MDP3" / MBO_FILE.name)
    config = SpymasterConfig(home=home)
    absent = absent_assets(RawCatalog(config.raw_dir, config.spec), date(2023, 12, 26), config)
    # MBO holds trades and rebuilds the 10-level book (so the book summary and depth flow too), not a BBO schema.
    assert "bronze_futures_trades" not in absent and "bronze_futures_mbp10" not in absent
    assert "silver_book_1s" not in absent and "silver_depth_flow_1m" not in absent
    assert absent["bronze_futures_bbo"] == "no mbp-1, bbo-1s, bbo-1m or tbbo in raw/ for 2023-12-26"


def test_a_bars_only_backfill_writes_no_empty_partition_and_the_ui_says_why(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    home = _bars_only_root(tmp_path)
    config = SpymasterConfig(home=home)
    report = backfill(config, date(2013, 10, 7), date(2013, 10, 8), charts=False)
    assert report.materialized == [date(2013, 10, 7), date(2013, 10, 8)]
    log = capsys.readouterr().err
    assert "no raw data for 9 asset(s) in 2013-10-07 .. 2013-10-08, not materialized" in log
    # Written to a file or a pipe, progress is one line per step and range, with counts and seconds.
    assert "\r" not in log
    assert re.search(r"^silver_bars: 2 sessions \(2013-10-07 \.\. 2013-10-08\) in \d+\.\d s$", log, re.M), log
    assert re.search(r"^gold_signals: 2 sessions \(2013-10-07 \.\. 2013-10-08\) in \d+\.\d s$", log, re.M), log
    lake = home / "lake"
    for name in OPTIONAL_ASSETS:
        tier = name.split("_")[0]
        assert not (lake / tier / name).exists(), name
    assert (lake / "gold" / "gold_signals" / "date=2013-10-08" / "part-0.parquet").is_file()
    from spymaster_resources.instance import open_instance

    instance, _ = open_instance(home)
    records = instance.fetch_observations(AssetKey("bronze_futures_mbp10"), limit=5).records
    assert [r.asset_observation.description for r in records] == ["not materialized for 2013-10-07 .. 2013-10-08: no mbp-10 or mbo in raw/ for 2013-10-07 .. 2013-10-08"]
    # The sessions count as built: a second backfill skips them rather than rebuilding their own assets.
    again = backfill(config, date(2013, 10, 7), date(2013, 10, 8), charts=False)
    assert again.materialized == [] and again.skipped == [date(2013, 10, 7), date(2013, 10, 8)]


def test_the_sensor_leaves_the_assets_without_data_out_of_the_sessions_run(tmp_path, monkeypatch):
    from spymaster_assets.automation.sensors import build_raw_files_sensor
    from spymaster_resources import SpymasterResource

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    home = _bars_only_root(tmp_path, days=("20131007", "20131008"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        instance = DagsterInstance.ephemeral()
        sensor = build_raw_files_sensor(products=("ES",))
        result = sensor(build_sensor_context(instance=instance, resources={"spymaster": SpymasterResource(home=str(home))}))
    request = next(r for r in result.run_requests if r.partition_key == "2013-10-08")
    selected = {key.path[-1] for key in request.asset_selection}
    assert not selected & set(OPTIONAL_ASSETS) and {"bronze_futures_ohlcv_1m", "silver_level_state", "gold_signals"} <= selected
    observed = {(e.asset_key.path[-1], e.partition) for e in result.asset_events}
    assert ("bronze_futures_trades", "2013-10-08") in observed
    assert all(e.description.startswith("not materialized: no ") or "0DTE" in e.description for e in result.asset_events)
