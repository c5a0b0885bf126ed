"""Bronze on the real sample: DBN decoding, front-month choice at a roll, session bounds, bad files."""

from __future__ import annotations

import io
import shutil
from datetime import date, datetime, timezone
from pathlib import Path

import polars as pl
import pytest
import zstandard

from spymaster_resources.raw_files import RawCatalog, inspect_file, iter_records, read_ohlcv_1m
from spymaster_assets.bronze.front_month import select_front_month
from spymaster_assets.bronze.ingest import session_definitions, session_ohlcv_1m, sessions_with_rth_data
from spymaster_assets.bronze.schemas import BRONZE_DEFINITIONS, BRONZE_FUTURES_OHLCV_1M
from spymaster_core.config import SpymasterConfig
from spymaster_core.errors import RawDataError
from spymaster_assets.sessions import session_bounds_utc

from conftest import SHARED_DATA

SAMPLE_RAW = Path(__file__).resolve().parents[2] / "data" / "sample" / "raw"


@pytest.fixture(scope="module")
def config(sample_home) -> SpymasterConfig:
    return SpymasterConfig(home=sample_home)


@pytest.fixture(scope="module")
def catalog(config) -> RawCatalog:
    return RawCatalog(config.raw_dir)


def test_sessions_with_regular_hours_are_the_fourteen_sample_sessions(catalog, config):
    sessions = sessions_with_rth_data(catalog, config)
    assert [d.isoformat() for d in sessions] == [
        "2013-10-07", "2013-10-08", "2013-10-09", "2013-10-10", "2013-10-11", "2013-10-14", "2013-10-29",
        "2013-10-30", "2013-11-18", "2013-12-02", "2013-12-03", "2013-12-18", "2013-12-20", "2020-01-06",
    ]


def test_front_month_follows_volume_through_the_december_2013_roll(catalog, config):
    fronts = {}
    for day in (date(2013, 12, 3), date(2013, 12, 18), date(2013, 12, 20)):
        defs, files = session_definitions(catalog, day, config)
        assert files, "the sample ships definition files"
        fronts[day] = session_ohlcv_1m(catalog, day, defs, config).front_month.raw_symbol
    assert fronts == {date(2013, 12, 3): "ESZ3", date(2013, 12, 18): "ESH4", date(2013, 12, 20): "ESH4"}


def test_session_bars_lie_inside_the_globex_session_and_pass_the_schema(catalog, config):
    day = date(2013, 10, 8)
    defs, _ = session_definitions(catalog, day, config)
    BRONZE_DEFINITIONS.validate(defs)
    bars = session_ohlcv_1m(catalog, day, defs, config).bars
    BRONZE_FUTURES_OHLCV_1M.validate(bars)
    start, end = session_bounds_utc(day, config)
    assert bars["ts_event"].min() >= start and bars["ts_event"].max() < end
    assert bars["raw_symbol"].unique().to_list() == ["ESZ3"]
    # 18:00 EDT on 10-07 is 22:00 UTC: the evening opening comes from the previous UTC file.
    assert bars["ts_event"].min() == datetime(2013, 10, 7, 22, 0, tzinfo=timezone.utc)


def test_decoded_prices_match_the_lean_csv(config):
    """The bar 2013-10-07 14:00 UTC of ESZ3 decoded from DBN equals the row of the original Lean CSV."""
    import zipfile

    lean = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "lean" / "Data" / "future" / "cme" / "minute" / "es" / "20131007_trade.zip"
    with zipfile.ZipFile(lean) as z:
        rows = z.read("20131007_es_minute_trade_201312.csv").decode().splitlines()
    row = next(r.split(",") for r in rows if r.startswith(str(14 * 3_600_000) + ","))
    bars = read_ohlcv_1m(
        [SAMPLE_RAW / "GLBX.MDP3" / "glbx-mdp3-20131007.ohlcv-1m.dbn.zst"],
        datetime(2013, 10, 7, 14, tzinfo=timezone.utc),
        datetime(2013, 10, 7, 14, 1, tzinfo=timezone.utc),
    ).filter(pl.col("raw_symbol") == "ESZ3")
    assert bars.height == 1
    assert [bars[c][0] for c in ("open", "high", "low", "close")] == [float(x) for x in row[1:5]]
    assert bars["volume"][0] == int(row[5])


def test_spreads_are_never_the_front_month():
    bars = pl.DataFrame(
        {"instrument_id": [1, 2, 3], "raw_symbol": ["ESZ3-ESH4", "ESZ3", "NQZ3"], "volume": [10_000, 500, 9_000]}
    ).with_columns(pl.col("instrument_id").cast(pl.UInt32))
    from spymaster_resources.raw_files import empty_definitions

    front = select_front_month(bars, empty_definitions(), date(2013, 12, 2))
    assert front.raw_symbol == "ESZ3" and front.volume_share == 1.0


def test_no_outright_raises_naming_the_session():
    bars = pl.DataFrame({"instrument_id": [1], "raw_symbol": ["ESZ3-ESH4"], "volume": [5]}).with_columns(pl.col("instrument_id").cast(pl.UInt32))
    from spymaster_resources.raw_files import empty_definitions

    with pytest.raises(RawDataError, match="2013-12-02"):
        select_front_month(bars, empty_definitions(), date(2013, 12, 2))


def _decompressed(path: Path) -> bytes:
    return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(path.read_bytes())).read()


def test_truncated_file_fails_with_its_name(tmp_path):
    src = SAMPLE_RAW / "GLBX.MDP3" / "glbx-mdp3-20131008.ohlcv-1m.dbn.zst"
    data = _decompressed(src)
    bad = tmp_path / "cut.dbn"
    bad.write_bytes(data[: len(data) - 20])  # cut inside the last record
    with pytest.raises(RawDataError, match=r"cut\.dbn: truncated"):
        inspect_file(bad)
    # The whole file decodes cleanly.
    good = tmp_path / "whole.dbn"
    good.write_bytes(data)
    assert inspect_file(good).ts_min is not None


def test_corrupt_and_missing_inputs_raise_clear_errors(tmp_path):
    junk = tmp_path / "raw" / "junk.dbn.zst"
    junk.parent.mkdir()
    junk.write_bytes(b"not a dbn file at all")
    catalog = RawCatalog(tmp_path / "raw")
    with pytest.raises(RawDataError, match="junk.dbn.zst"):
        catalog.files(strict=True)
    # Listing skips it (one bad file must not block every range) but names it, and any window it may cover raises.
    assert catalog.files() == [] and "junk.dbn.zst" in str(catalog.problems()[0])
    with pytest.raises(RawDataError, match="junk.dbn.zst"):
        catalog.files_for_window("ohlcv-1m", datetime(2024, 1, 2, tzinfo=timezone.utc), datetime(2024, 1, 3, tzinfo=timezone.utc))
    with pytest.raises(RawDataError, match="does not exist"):
        RawCatalog(tmp_path / "nowhere").files()


def test_session_without_files_names_the_session(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy2(SAMPLE_RAW / "GLBX.MDP3" / "glbx-mdp3-20131008.ohlcv-1m.dbn.zst", raw)
    cfg = SpymasterConfig(home=tmp_path)
    with pytest.raises(RawDataError, match="2013-12-18"):
        session_ohlcv_1m(RawCatalog(raw), date(2013, 12, 18), pl.DataFrame(), cfg)


def test_a_truncated_dbn_v1_file_fails_with_its_name(tmp_path):
    """The real ESH4 MBO hour is DBN v1; cut inside its last record it must fail, not lose the record silently."""
    source = SHARED_DATA / "dbn" / "nautilus" / "esh4-glbx-mdp3-20231225.mbo.dbn.zst"
    with source.open("rb") as fh:
        raw = zstandard.ZstdDecompressor().stream_reader(fh).read()
    cut = tmp_path / "esh4-cut.mbo.dbn"
    cut.write_bytes(raw[:-20])
    with pytest.raises(RawDataError, match="esh4-cut.mbo.dbn.*truncated"):
        sum(len(chunk) for chunk in iter_records(cut))
    whole = tmp_path / "esh4-whole.mbo.dbn"
    whole.write_bytes(raw)
    assert sum(len(chunk) for chunk in iter_records(whole)) == 68_792


def test_a_new_catalog_reuses_saved_inspections_and_inspects_changed_files_again(tmp_path, monkeypatch):
    """The inventory beside raw/'s files spares a new process every header; a rewritten file is inspected again."""
    import os

    import spymaster_resources.raw_files as raw_files

    raw = tmp_path / "raw"
    raw.mkdir()
    for name in ("glbx-mdp3-20131008.ohlcv-1m.dbn.zst", "glbx-mdp3-20131008.definition.dbn.zst"):
        shutil.copy2(SAMPLE_RAW / "GLBX.MDP3" / name, raw)
    first = RawCatalog(raw).files()
    assert (raw / raw_files.INVENTORY_FILE).is_file() and len(first) == 2
    inspected: list[str] = []
    real = raw_files.inspect_file
    monkeypatch.setattr(raw_files, "inspect_file", lambda path, *a, **k: inspected.append(path.name) or real(path, *a, **k))
    assert RawCatalog(raw).files() == first and inspected == []
    bars = raw / "glbx-mdp3-20131008.ohlcv-1m.dbn.zst"
    os.utime(bars, ns=(bars.stat().st_atime_ns, bars.stat().st_mtime_ns + 1_000_000))
    again = RawCatalog(raw).files()
    assert inspected == [bars.name] and {f.path.name for f in again} == {f.path.name for f in first}
    (raw / raw_files.INVENTORY_FILE).write_text("{not json")
    inspected.clear()
    assert {f.ts_min for f in RawCatalog(raw).files()} == {f.ts_min for f in first} and sorted(inspected) == sorted(f.path.name for f in first)
