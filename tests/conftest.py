"""Shared fixtures: the committed real ES sample as a data root, and a few sessions materialized through every asset."""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import os
import shutil
import tempfile
import warnings
from datetime import date
from pathlib import Path

import pytest

# Values kept between processes (exchange schedules, setup-index refit copies) go to a directory of
# this test session, never the user's cache; CLI subprocesses inherit it.
if "SPYMASTER_CACHE_DIR" not in os.environ:
    os.environ["SPYMASTER_CACHE_DIR"] = tempfile.mkdtemp(prefix="spymaster-cache-")
    atexit.register(shutil.rmtree, os.environ["SPYMASTER_CACHE_DIR"], True)

REPO = Path(__file__).resolve().parents[1]
SAMPLE_RAW = REPO / "data" / "sample" / "raw"
SHARED_DATA = REPO.parent / "shared" / "data"
#: Five consecutive real sessions (ESZ3) used by the Dagster chain and query tests.
CHAIN_SESSIONS = [date(2013, 10, 7), date(2013, 10, 8), date(2013, 10, 9), date(2013, 10, 10), date(2013, 10, 11)]
#: The chain's data-root config.json: a model from 2 earlier sessions, retrained every 2 (10-09 trains,
#: 10-10 reuses it, 10-11 retrains), the blend fitted from 1 earlier session with a model (10-11).
#: The kNN prior is the partition base rate, as when the pinned ES fixtures were written (the distance
#: lookup since issue 20; tests/gold/test_signals.py covers it).
CHAIN_CONFIG = {"model_min_sessions": 2, "model_retrain_sessions": 2, "blend_min_sessions": 1, "knn_prior": "partition_base_rate"}
#: The real GC sample's sessions (data/sample/GC), and SPY's (data/sample/SPY: the Friday before too).
GC_SESSIONS = [date(2013, 10, d) for d in (7, 8, 9, 10, 11)]
SPY_SESSIONS = [date(2013, 10, 4)] + GC_SESSIONS


#: The products of the multi-product data root (``multi_home``), and a raw file of a product it does
#: not configure (NQ: its header names NQ.FUT).
MULTI_PRODUCTS = ["ES", "GC", "SPY"]
NQ_FILE = "nq/glbx-mdp3-20131008.ohlcv-1m.dbn.zst"


def _write_nq_file(path: Path) -> None:
    """Two NQZ3 bars as Databento would deliver a parent NQ.FUT request (made up: what matters is the header)."""
    import databento_dbn as dbn
    from databento_dbn import v3

    day = date(2013, 10, 8)
    start = 1381190400 * 10**9  # 2013-10-08 00:00 UTC
    metadata = dbn.Metadata(
        dataset="GLBX.MDP3", start=start, end=start + 86_400 * 10**9, stype_in=dbn.SType.PARENT, stype_out=dbn.SType.INSTRUMENT_ID,
        schema=dbn.Schema.OHLCV_1M, symbols=["NQ.FUT"], partial=[], not_found=[], ts_out=False, version=3,
        mappings=[type("M", (), {"raw_symbol": "NQZ3", "intervals": [type("I", (), {"start_date": day, "end_date": date(2013, 10, 9), "symbol": "7"})()]})()],
    )
    path.parent.mkdir(parents=True)
    with path.open("wb") as out:
        transcoder = dbn.Transcoder(out, dbn.Encoding.DBN, dbn.Compression.ZSTD)
        transcoder.write(metadata.encode())
        for minute in range(2):
            price = 3_200 * 10**9
            bar = v3.OHLCVMsg(rtype=dbn.RType.OHLCV_1M.value, publisher_id=1, instrument_id=7, ts_event=start + (13 * 60 + 30 + minute) * 60 * 10**9, open=price, high=price, low=price, close=price, volume=5)
            transcoder.write(bytes(bar))
        transcoder.finish()


@pytest.fixture(scope="session")
def multi_home(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A data root configured for ES, GC and SPY whose raw/ holds the three samples (each in its own
    folder: the GC and ES files share Databento's daily names) and an NQ file; each product backfilled
    with the CLI. Returns the root and each backfill's stderr."""
    from spymaster_assets.cli import main

    home = tmp_path_factory.mktemp("multi")
    for src in SAMPLE_RAW.rglob("*.dbn.zst"):
        if src.name[10:18] <= "20131011":
            (home / "raw" / "es").mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, home / "raw" / "es" / src.name)
    for product in ("GC", "SPY"):
        shutil.copytree(REPO / "data" / "sample" / product / "raw", home / "raw" / product.lower())
    _write_nq_file(home / "raw" / NQ_FILE)
    (home / "config.json").write_text(json.dumps({"products": MULTI_PRODUCTS, **CHAIN_CONFIG}))
    logs = {}
    spans = {"ES": CHAIN_SESSIONS, "GC": GC_SESSIONS, "SPY": SPY_SESSIONS}
    for product in MULTI_PRODUCTS:
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(["--home", str(home), "backfill", "--product", product, "--start", str(spans[product][0]), "--end", str(spans[product][-1]), "--quiet", "--no-charts"])
        assert code == 0, err.getvalue()
        logs[product] = err.getvalue()
    return home, logs


def load_script(name: str):
    """Import ``scripts/<name>.py`` by path (scripts/ is not a package), registered in sys.modules
    (dataclasses look their module up there while it executes)."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def sample_root(home: Path, stamps=None, through: str | None = None, config: dict | None = None) -> Path:
    """A data root at ``home`` whose raw/GLBX.MDP3 holds copies of the committed ES sample files: those
    whose YYYYMMDD stamp is in ``stamps``, or up to ``through`` (every file by default); ``config``
    written as its config.json when given."""
    raw = home / "raw" / "GLBX.MDP3"
    raw.mkdir(parents=True)
    if config is not None:
        (home / "config.json").write_text(json.dumps(config))
    for src in SAMPLE_RAW.rglob("*.dbn.zst"):
        stamp = src.name[10:18]
        if (stamps is None or stamp in stamps) and (through is None or stamp <= through):
            shutil.copy2(src, raw / src.name)
    return home


def backfill_product_home(home: Path, product: str, sessions: list[date]) -> Path:
    """Copy product ``product``'s real sample (data/sample/<product>/raw) into ``home`` configured for
    it alone (with CHAIN_CONFIG's small-history settings) and backfill ``sessions`` with the CLI."""
    from spymaster_assets.cli import main

    assert (SHARED_DATA / "lean").is_dir(), f"{SHARED_DATA / 'lean'}: the shared data is missing (tests need ../shared beside the repository)"
    shutil.copytree(REPO / "data" / "sample" / product / "raw", home / "raw")
    (home / "config.json").write_text(json.dumps({"products": [product], **CHAIN_CONFIG}))
    argv = ["--home", str(home), "backfill", "--start", sessions[0].isoformat(), "--end", sessions[-1].isoformat(), "--quiet", "--no-charts"]
    assert main(argv) == 0
    return home


@pytest.fixture(scope="session")
def gc_home(tmp_path_factory) -> Path:
    """A data root serving GC alone, its 5 real sample sessions backfilled bronze to gold."""
    return backfill_product_home(tmp_path_factory.mktemp("gc"), "GC", GC_SESSIONS)


@pytest.fixture(scope="session")
def spy_home(tmp_path_factory) -> Path:
    """A data root serving SPY alone, its 6 real sample sessions backfilled bronze to gold."""
    return backfill_product_home(tmp_path_factory.mktemp("spy"), "SPY", SPY_SESSIONS)


def pytest_sessionstart(session) -> None:
    """The tests read real recorded data from ../shared/data beside the repository: without it the run
    fails at once, saying so, instead of skipping the tests that need it."""
    if not (SHARED_DATA / "lean").is_dir() or not (SHARED_DATA / "dbn").is_dir():
        raise pytest.UsageError(f"{SHARED_DATA}: the shared real data is missing; the tests need ../shared/data beside the repository")


@pytest.fixture(scope="session")
def sample_home(tmp_path_factory) -> Path:
    """A fresh data root whose raw/ holds a copy of the committed sample DBN files."""
    home = tmp_path_factory.mktemp("home")
    shutil.copytree(SAMPLE_RAW, home / "raw")
    return home


@pytest.fixture(scope="session")
def materialized_home(tmp_path_factory) -> Path:
    """A data root with CHAIN_SESSIONS materialized through every asset (in process, ephemeral instance)."""
    from dagster import DagsterInstance, materialize

    from spymaster_assets.definitions import all_assets
    from spymaster_resources import SpymasterResource

    home = tmp_path_factory.mktemp("chain")
    (home / "config.json").write_text(json.dumps(CHAIN_CONFIG))
    raw = home / "raw" / "GLBX.MDP3"
    raw.mkdir(parents=True)
    for src in SAMPLE_RAW.rglob("*.dbn.zst"):
        if src.name[10:18] <= "20131011":
            shutil.copy2(src, raw / src.name)
    instance = DagsterInstance.ephemeral()
    resources = {"spymaster": SpymasterResource(home=str(home))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for day in CHAIN_SESSIONS:
            result = materialize(all_assets, partition_key=day.isoformat(), instance=instance, resources=resources)
            assert result.success, f"materialization of {day} failed"
    return home


def lake_files(lake: Path) -> dict[str, Path]:
    """Every file of a local lake directory by its path relative to it (temporary files left out)."""
    return {p.relative_to(lake).as_posix(): p for p in sorted(lake.rglob("*")) if p.is_file() and not p.name.startswith(".")}


def _sizes(fingerprint: dict[str, str]) -> dict[str, str]:
    return {k: v.split("-")[0] for k, v in fingerprint.items()}


def assert_same_lake(ours: Path, theirs: Path) -> None:
    """The lakes under ``ours`` and ``theirs`` hold the same files with the same content.

    File fingerprints recorded in the lake are ``<size>-<mtime_ns>`` (or ``<size>-<ETag>`` on object
    storage): only their sizes are compared, since times differ by construction.
    """
    import polars as pl

    mine, other = lake_files(ours), lake_files(theirs)
    assert sorted(mine) == sorted(other)
    for name, path in mine.items():
        twin = other[name]
        if path.suffix == ".parquet":
            a, b = pl.read_parquet(path), pl.read_parquet(twin)
            if "signals_fingerprint" in a.columns:
                a, b = (f.with_columns(pl.col("signals_fingerprint").str.split("-").list.first()) for f in (a, b))
            assert a.equals(b), name
        elif path.name == "history.json":
            assert _sizes(json.loads(path.read_text())["history"]) == _sizes(json.loads(twin.read_text())["history"]), name
        elif path.name == "cumulative.npz":
            import numpy as np

            with np.load(path) as a, np.load(twin) as b:
                assert sorted(a.files) == sorted(b.files), name
                metas = [json.loads(str(f["meta"])) for f in (a, b)]
                for meta in metas:
                    meta["signals_fingerprints"] = _sizes(meta["signals_fingerprints"])
                assert metas[0] == metas[1] and all(np.array_equal(a[k], b[k]) for k in a.files if k != "meta"), name
        elif path.name == "manifest.json" and "gold_setup_index" in name and "schema=" not in name:
            a, b = json.loads(path.read_text()), json.loads(twin.read_text())
            a["provenance"]["episodes"], b["provenance"]["episodes"] = _sizes(a["provenance"]["episodes"]), _sizes(b["provenance"]["episodes"])
            assert a == b, name
        else:
            assert path.read_bytes() == twin.read_bytes(), name
