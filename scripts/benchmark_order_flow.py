#!/usr/bin/env python
"""Order-flow benchmarks on one generated full-depth ES session, printed as ``name: value`` lines.

The session is SYNTHETIC (scripts/generate_session.py; no public multi-hour ES MBO/MBP-10 exists);
it is generated once into ``--work`` (default ``data/generated/bench``) and reused. Each measurement
runs in its own child process, so its peak resident memory (``ru_maxrss``) is its own.

What is measured:

1. ``ingest_<schema>_*`` for mbp-10 and mbo: the bronze_futures_mbp10 path without Dagster
   (``bronze.ingest.session_mbp10`` -> pandera check per chunk -> ``Lake.stream_writer`` Parquet):
   DBN records read per wall second and per CPU second (user + system, all threads: "per core"),
   rows written, peak RSS.
2. ``to_df_<schema>_*``: ``DBNStore.to_df(count=...)`` over the first ``--to-df-records`` records of
   the same file, in the same run: the baseline the ingest rate is compared with (``*_vs_to_df``).
3. ``pipeline_*``: one ``dagster.materialize`` of every asset (bronze -> silver -> gold) for the
   session in a fresh data root holding the generated mbo, trades, definition and ohlcv-1m files
   (the book is rebuilt from MBO), under an ephemeral instance: wall seconds, seconds per asset,
   peak RSS, and the feature families the session got.

Usage: ``.venv/bin/python scripts/benchmark_order_flow.py [--scale 1.0] [--to-df-records 2000000] [--regenerate]``
Targets (issue 3): ingest >= 5x to_df and >= 2 M mbp-10 records/s/core; pipeline < 60 s on 2 cores;
peak RSS < 4 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
import warnings
from datetime import date
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

SESSION = date(2024, 3, 12)
FRONT_MONTH_ID = 202406  # the generator's synthetic instrument_id for ESM4


def progress(message: str) -> None:
    print(f"[benchmark] {message}", file=sys.stderr, flush=True)


def _usage() -> dict[str, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"cpu_s": usage.ru_utime + usage.ru_stime, "max_rss_mb": usage.ru_maxrss / 1024}


def _raw_file(work: Path, schema: str) -> Path:
    return work / "raw" / f"synthetic-glbx-mdp3-{SESSION:%Y%m%d}.{schema}.dbn.zst"


def _home_with(work: Path, name: str, schemas: list[str]) -> Path:
    """A fresh data root whose raw/ links the generated files of ``schemas`` only."""
    home = work / "homes" / name
    shutil.rmtree(home, ignore_errors=True)
    (home / "raw").mkdir(parents=True)
    for schema in schemas:
        (home / "raw" / _raw_file(work, schema).name).symlink_to(_raw_file(work, schema))
    return home


def phase_ingest(work: Path, schema: str) -> dict:
    from spymaster_resources.raw_files import RawCatalog, empty_definitions
    from spymaster_assets.bronze.ingest import session_mbp10
    from spymaster_assets.bronze.schemas import BRONZE_FUTURES_MBP10
    from spymaster_core.config import SpymasterConfig
    from spymaster_resources.lake import Lake

    home = _home_with(work, f"ingest-{schema}", ["definition", "ohlcv-1m", schema])
    config = SpymasterConfig(home=home)
    catalog = RawCatalog(config.raw_dir, config.spec)
    catalog.files()  # header reads, not timed
    records = _record_count(work, schema)
    before, t0 = _usage(), time.perf_counter()
    stream = session_mbp10(catalog, SESSION, FRONT_MONTH_ID, empty_definitions(), config)
    with Lake(config.lake_dir).stream_writer("bronze", "bronze_futures_mbp10", SESSION) as writer:
        writer.empty_schema = stream.schema
        for frame in stream.frames:
            BRONZE_FUTURES_MBP10.validate(frame)
            writer.write(frame)
    wall, after = time.perf_counter() - t0, _usage()
    return {"records": records, "rows": writer.rows, "wall_s": wall, "cpu_s": after["cpu_s"] - before["cpu_s"], "max_rss_mb": after["max_rss_mb"], "source": stream.source}


def _record_count(work: Path, schema: str) -> int:
    notice = (work / "raw" / "counts.json")
    return int(json.loads(notice.read_text())[schema])


def phase_to_df(work: Path, schema: str, limit: int) -> dict:
    import databento as db

    store = db.DBNStore.from_file(_raw_file(work, schema))
    before, t0 = _usage(), time.perf_counter()
    seen = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for frame in store.to_df(count=min(limit, 1_000_000)):
            seen += len(frame)
            if seen >= limit:
                break
    wall, after = time.perf_counter() - t0, _usage()
    return {"records": seen, "wall_s": wall, "cpu_s": after["cpu_s"] - before["cpu_s"], "max_rss_mb": after["max_rss_mb"]}


def phase_pipeline(work: Path) -> dict:
    from dagster import DagsterInstance, materialize

    from spymaster_assets.definitions import all_assets
    from spymaster_resources import SpymasterResource
    from spymaster_resources.lake import Lake

    home = _home_with(work, "pipeline", ["definition", "ohlcv-1m", "trades", "mbo"])
    instance = DagsterInstance.ephemeral()
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = materialize(all_assets, partition_key=SESSION.isoformat(), instance=instance, resources={"spymaster": SpymasterResource(home=str(home))})
    wall = time.perf_counter() - t0
    if not result.success:
        raise SystemExit("pipeline materialization failed")
    steps = {s.step_key: (s.end_time or 0) - (s.start_time or 0) for s in instance.get_run_step_stats(result.run_id)}
    state = Lake(home / "lake").read("silver", "silver_level_state", SESSION)
    return {"wall_s": wall, "max_rss_mb": _usage()["max_rss_mb"], "steps": steps, "families": sorted(state["feature_families"].unique().to_list()), "anchors": state["ts_event"].n_unique()}


def _child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def ensure_session(work: Path, scale: float, regenerate: bool) -> dict[str, int]:
    counts_path = work / "raw" / "counts.json"
    if counts_path.is_file() and not regenerate:
        counts = json.loads(counts_path.read_text())
        if counts.get("scale") == scale:
            progress(f"reusing the generated session in {work / 'raw'}")
            return counts
    shutil.rmtree(work / "raw", ignore_errors=True)
    progress(f"generating a synthetic session at scale {scale} into {work / 'raw'} (about 50 s per 1.0)")
    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    from generate_session import generate_session

    report = generate_session(SESSION, work / "raw", scale=scale, seed=7)
    counts = {**{k: int(v) for k, v in report.counts.items()}, "scale": scale, "seconds": report.seconds}
    counts_path.write_text(json.dumps(counts))
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog="Results go to stdout as name: value lines; progress to stderr.")
    parser.add_argument("--work", type=Path, default=REPO_ROOT / "data" / "generated" / "bench", help="where the generated session and the benchmark data roots live (default: %(default)s)")
    parser.add_argument("--scale", type=float, default=1.0, help="generated session size relative to a full ES day (default: %(default)s)")
    parser.add_argument("--to-df-records", type=int, default=2_000_000, help="records decoded by the DBNStore.to_df baseline (default: %(default)s)")
    parser.add_argument("--regenerate", action="store_true", help="generate the session again even if one of this scale exists")
    parser.add_argument("--phase", choices=["ingest", "to_df", "pipeline"], help=argparse.SUPPRESS)
    parser.add_argument("--schema", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.phase:  # child process: one measurement, one JSON line
        result = {"ingest": lambda: phase_ingest(args.work, args.schema), "to_df": lambda: phase_to_df(args.work, args.schema, args.to_df_records), "pipeline": lambda: phase_pipeline(args.work)}[args.phase]()
        print(json.dumps(result))
        return 0

    counts = ensure_session(args.work, args.scale, args.regenerate)
    print(f"env_cpu_count: {os.cpu_count()}")
    print(f"session_synthetic_scale: {args.scale}")
    for schema in ("mbo", "mbp-10", "trades"):
        print(f"session_{schema.replace('-', '')}_records: {counts[schema]}")
    common = ["--work", str(args.work), "--to-df-records", str(args.to_df_records)]
    for schema in ("mbp-10", "mbo"):
        name = schema.replace("-", "")
        progress(f"ingest {schema} -> bronze_futures_mbp10")
        ours = _child(["--phase", "ingest", "--schema", schema, *common])
        progress(f"DBNStore.to_df baseline on {schema}")
        base = _child(["--phase", "to_df", "--schema", schema, *common])
        ours_core = ours["records"] / ours["cpu_s"]
        base_core = base["records"] / base["cpu_s"]
        print(f"ingest_{name}_records: {ours['records']}")
        print(f"ingest_{name}_rows_written: {ours['rows']}")
        print(f"ingest_{name}_wall_s: {ours['wall_s']:.2f}")
        print(f"ingest_{name}_records_per_s_wall: {ours['records'] / ours['wall_s']:.0f}")
        print(f"ingest_{name}_records_per_cpu_s: {ours_core:.0f}")
        print(f"ingest_{name}_peak_rss_mb: {ours['max_rss_mb']:.0f}")
        print(f"to_df_{name}_records: {base['records']}")
        print(f"to_df_{name}_records_per_cpu_s: {base_core:.0f}")
        print(f"to_df_{name}_peak_rss_mb: {base['max_rss_mb']:.0f}")
        print(f"ingest_{name}_vs_to_df_per_core: {ours_core / base_core:.2f}")
    progress("bronze -> silver -> gold for the session (every asset, one materialize)")
    pipe = _child(["--phase", "pipeline", *common])
    print(f"pipeline_wall_s: {pipe['wall_s']:.1f}")
    print(f"pipeline_peak_rss_mb: {pipe['max_rss_mb']:.0f}")
    print(f"pipeline_feature_families: {','.join(pipe['families'])}")
    print(f"pipeline_anchors: {pipe['anchors']}")
    for step, seconds in sorted(pipe["steps"].items(), key=lambda kv: -kv[1]):
        print(f"pipeline_step_{step}_s: {seconds:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
