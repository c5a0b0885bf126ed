#!/usr/bin/env python
"""Where a run's time went: the Dagster step durations of a data root's latest run (or ``--run-id``), as ``name: value`` lines.

Also prints the seconds spent recording partition materializations (Dagster's bookkeeping, from the
event timestamps of each step) and the event count.

Usage: ``.venv/bin/python scripts/step_durations.py --home DIR [--run-id ID]`` (``DAGSTER_HOME`` unset:
the data root's own instance, as the CLI uses).
"""

from __future__ import annotations

import argparse
import warnings
from collections import defaultdict
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True, help="data root whose Dagster instance holds the run")
    parser.add_argument("--run-id", default=None, help="run to report (default: the latest run)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    from dagster import DagsterEventType

    from spymaster_resources.instance import open_instance

    instance, _ = open_instance(args.home)
    runs = [instance.get_run_by_id(args.run_id)] if args.run_id else instance.get_runs(limit=1)
    if not runs or runs[0] is None:
        raise SystemExit(f"no run {args.run_id or ''} in the instance of {args.home}".replace("  ", " "))
    run = runs[0]
    started: dict[str, float] = {}
    durations: dict[str, float] = {}
    materialized: dict[str, list[float]] = defaultdict(list)
    records = instance.all_logs(run.run_id)
    for record in records:
        event = record.dagster_event
        if event is None:
            continue
        if event.event_type == DagsterEventType.STEP_START:
            started[record.step_key] = record.timestamp
        elif event.event_type in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE) and record.step_key in started:
            durations[record.step_key] = record.timestamp - started[record.step_key]
        elif event.event_type == DagsterEventType.ASSET_MATERIALIZATION:
            materialized[record.step_key].append(record.timestamp)
    print(f"run_id: {run.run_id}")
    print(f"run_wall_seconds: {records[-1].timestamp - records[0].timestamp:.3f}" if records else "run_wall_seconds: 0")
    for step, seconds in sorted(durations.items(), key=lambda item: -item[1]):
        print(f"step_seconds/{step}: {seconds:.3f}")
    print(f"materialization_events: {sum(len(v) for v in materialized.values())}")
    print(f"materialization_recording_seconds: {sum(max(v) - min(v) for v in materialized.values()):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
