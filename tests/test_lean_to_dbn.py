"""Tests of scripts/lean_to_dbn.py: Lean ES minute bars -> Databento DBN, read back with databento.

The converter is re-run into a temporary directory on real Lean files from ``shared/`` (beside the
repository) and its output is checked against the Lean CSVs, parsed here independently.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import sys
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import databento as db
import pandas as pd
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "scripts" / "lean_to_dbn.py"
LEAN_DIR = REPO_ROOT.parent / "shared" / "data" / "lean" / "Data" / "future" / "cme" / "minute" / "es"

# databento's to_df uses pandas calls that pandas 3 deprecates; not ours to fix.
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]


def _load_converter():
    """Import scripts/lean_to_dbn.py by path (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("lean_to_dbn", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    # dataclasses look their module up in sys.modules while the module executes.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


lean_to_dbn = _load_converter()


def _lean_rows(day: str) -> dict[str, list[list[str]]]:
    """Raw CSV rows of every contract in ``{day}_trade.zip``, keyed by contract month ``YYYYMM``."""
    with zipfile.ZipFile(LEAN_DIR / f"{day}_trade.zip") as zf:
        return {
            name[-10:-4]: [r for r in csv.reader(io.TextIOWrapper(zf.open(name), "ascii")) if r]
            for name in zf.namelist()
        }


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Output directory of the converter run on 2013-12-18 (five contracts) and 2020-01-06."""
    out = tmp_path_factory.mktemp("dbn")
    args = ["--lean-dir", str(LEAN_DIR), "--out", str(out), "--dates", "20131218", "20200106"]
    assert lean_to_dbn.main(args) == 0
    return out


@pytest.mark.parametrize("day", ["20131218", "20200106"])
def test_ohlcv_metadata_and_record_count(converted: Path, day: str) -> None:
    store = db.DBNStore.from_file(converted / f"glbx-mdp3-{day}.ohlcv-1m.dbn.zst")
    meta = store.metadata
    assert meta.version == 3
    assert store.dataset == "GLBX.MDP3"
    assert store.schema == db.Schema.OHLCV_1M
    assert str(meta.stype_in) == "parent" and meta.symbols == ["ES.FUT"]
    start = pd.Timestamp(day, tz="UTC")
    assert (meta.start, meta.end) == (start.value, (start + pd.Timedelta(days=1)).value)

    df = store.to_df()
    rows = _lean_rows(day)
    assert len(df) == sum(len(r) for r in rows.values())
    assert set(df["rtype"]) == {0x21}
    assert set(df["publisher_id"]) == {db.Publisher.GLBX_MDP3_GLBX.to_int()}
    # Databento order: by ts_event, then instrument_id.
    keys = list(zip(df.index.asi8, df["instrument_id"]))
    assert keys == sorted(keys)


def test_symbology_mapping(converted: Path) -> None:
    store = db.DBNStore.from_file(converted / "glbx-mdp3-20131218.ohlcv-1m.dbn.zst")
    mappings = store.metadata.mappings
    assert set(mappings) == {"ESZ3", "ESH4", "ESM4", "ESU4", "ESZ4"}
    (interval,) = mappings["ESZ3"]
    assert str(interval["start_date"]) == "2013-12-18" and str(interval["end_date"]) == "2013-12-19"
    assert interval["symbol"] == "201312"
    df = store.to_df()
    assert set(df.loc[df["instrument_id"] == 201403, "symbol"]) == {"ESH4"}


@pytest.mark.parametrize(
    ("day", "month", "index"),
    [("20131218", "201312", 0), ("20131218", "201403", 500), ("20200106", "202003", -1)],
)
def test_bar_values_match_csv(converted: Path, day: str, month: str, index: int) -> None:
    row = _lean_rows(day)[month][index]
    midnight = datetime.strptime(day, "%Y%m%d").replace(tzinfo=timezone.utc)
    ts = pd.Timestamp(midnight) + pd.Timedelta(milliseconds=int(row[0]))
    df = db.DBNStore.from_file(converted / f"glbx-mdp3-{day}.ohlcv-1m.dbn.zst").to_df()
    bar = df[(df.index == ts) & (df["instrument_id"] == int(month))]
    assert len(bar) == 1
    assert [float(bar[c].iloc[0]) for c in ("open", "high", "low", "close")] == [float(v) for v in row[1:5]]
    assert int(bar["volume"].iloc[0]) == int(row[5])

    # Raw records keep the exact fixed-point value (1e-9 scale), not a float approximation.
    rec = next(r for r in db.DBNStore.from_file(converted / f"glbx-mdp3-{day}.ohlcv-1m.dbn.zst")
               if r.ts_event == ts.value and r.instrument_id == int(month))
    assert rec.open == round(float(row[1]) * 4) * 250_000_000


def test_definitions(converted: Path) -> None:
    store = db.DBNStore.from_file(converted / "glbx-mdp3-20131218.definition.dbn.zst")
    assert store.schema == db.Schema.DEFINITION
    assert set(store.metadata.mappings) == {"ESZ3", "ESH4", "ESM4", "ESU4", "ESZ4"}
    df = store.to_df().set_index("raw_symbol")
    assert list(df.index) == ["ESZ3", "ESH4", "ESM4", "ESU4", "ESZ4"]
    # 09:30 New York on the third Friday: 14:30 UTC in winter, 13:30 UTC in summer.
    assert df.loc["ESZ3", "expiration"] == pd.Timestamp("2013-12-20 14:30", tz="UTC")
    assert df.loc["ESH4", "expiration"] == pd.Timestamp("2014-03-21 13:30", tz="UTC")
    assert df.loc["ESZ4", "activation"] == pd.Timestamp("2013-09-20 13:30", tz="UTC")
    assert (df["unit_of_measure_qty"] == 50).all()
    assert (df["min_price_increment"] == 0.25).all()
    assert (df["instrument_class"] == "F").all() and (df["security_type"] == "FUT").all()
    assert set(df["exchange"]) == {"XCME"} and set(df["asset"]) == {"ES"} and set(df["cfi"]) == {"FFIXSX"}
    assert set(df["unit_of_measure"]) == {"IPNT"} and set(df["underlying"]) == {""}
    assert df["strike_price"].isna().all()


def test_definitions_2020(converted: Path) -> None:
    df = db.DBNStore.from_file(converted / "glbx-mdp3-20200106.definition.dbn.zst").to_df()
    assert list(df["raw_symbol"]) == ["ESH0", "ESM0", "ESU0"]
    assert df["expiration"].iloc[0] == pd.Timestamp("2020-03-20 13:30", tz="UTC")


def test_output_is_deterministic(converted: Path, tmp_path: Path) -> None:
    lean_to_dbn.convert_day(LEAN_DIR / "20200106_trade.zip", tmp_path)
    for name in ("glbx-mdp3-20200106.ohlcv-1m.dbn.zst", "glbx-mdp3-20200106.definition.dbn.zst"):
        assert (tmp_path / name).read_bytes() == (converted / name).read_bytes()
    assert not list(tmp_path.glob("*.tmp"))


def test_missing_dir_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(lean_to_dbn.LeanFormatError, match="does not exist"):
        lean_to_dbn.find_trade_zips(tmp_path / "nope")


def test_malformed_row_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "20131007_trade.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        # Line 2's high (1676.25) is below its open: a corrupt bar.
        zf.writestr(
            "20131007_es_minute_trade_201312.csv",
            "0,1676.5,1676.5,1676.5,1676.5,9\n60000,1676.5,1676.25,1676.5,1676.5,3\n",
        )
    match = r"20131007_es_minute_trade_201312\.csv line 2: high/low"
    with pytest.raises(lean_to_dbn.LeanFormatError, match=match):
        lean_to_dbn.convert_day(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("product", "dates", "folder"), [
    ("GC", ["20131007", "20131011"], "GC/raw/GLBX.MDP3"),
    ("SPY", ["20131004", "20131011"], "SPY/raw/XNAS.ITCH"),
])
def test_the_committed_gc_and_spy_samples_are_the_converters_output(tmp_path: Path, product: str, dates: list[str], folder: str) -> None:
    assert lean_to_dbn.main(["--product", product, "--out", str(tmp_path), "--dates", *dates]) == 0
    committed = REPO_ROOT / "data" / "sample" / folder
    written = sorted(tmp_path.iterdir())
    assert written and all((committed / p.name).read_bytes() == p.read_bytes() for p in written)


def test_gc_definitions_carry_comex_gold_terms(tmp_path: Path) -> None:
    assert lean_to_dbn.main(["--product", "GC", "--out", str(tmp_path), "--dates", "20131008"]) == 0
    df = db.DBNStore.from_file(tmp_path / "glbx-mdp3-20131008.definition.dbn.zst").to_df().set_index("raw_symbol")
    assert "GCZ3" in df.index and set(df["asset"]) == {"GC"} and set(df["exchange"]) == {"XCEC"}
    assert (df["min_price_increment"] == 0.1).all() and (df["unit_of_measure_qty"] == 100).all()
    # Trading ends 12:30 CT on the third last business day of the contract month: 2013-12-27 (Friday; the 30th and 31st follow).
    assert df.loc["GCZ3", "expiration"] == pd.Timestamp("2013-12-27 18:30", tz="UTC")
