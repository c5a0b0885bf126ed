"""What history an as-of answer was built on, and whether the lake still holds that history.

Gold of day D depends on every session before D: their gold_episodes (normalization, model, index,
distance lookup) and gold_signals (the blend fit). The *history fingerprint* of D is, for each of
those partitions, its file size and modification time (ns), or on object storage its size and ETag. gold_signals records the fingerprint it
was built on in ``history.json`` beside its Parquet file; when a session before D is added or
rebuilt afterwards, the fingerprint changes, D's answers are stale, and a backfill rebuilds them
(DESIGN.md "Backfill and history": answers never silently rest on a history that has since changed).
"""

from __future__ import annotations

import json
from datetime import date

from spymaster_resources.lake import Lake
from spymaster_resources.lake_paths import LakePath, write_text_atomic

HISTORY_FILE = "history.json"
_TABLES = ("gold_episodes", "gold_signals")


def history_fingerprint(lake: Lake, day: date, tables: tuple[str, ...] = _TABLES) -> dict[str, str]:
    """``{"<table>/<date>": "<fingerprint>"}`` for every partition of ``tables`` (default gold_episodes
    and gold_signals) before ``day``: ``<size>-<mtime_ns>`` locally, ``<size>-<ETag>`` on object
    storage (``lake_paths.file_fingerprint``); one listing per table. While the lake's listings are
    kept (a range step's walk) the result is reused until one of them changes. The caller must not
    modify it."""
    versions = tuple(lake.listing_version("gold", table) for table in tables)
    key = (str(lake.root), tables, day, versions)
    if None not in versions and key in _FINGERPRINTS:
        return _FINGERPRINTS[key]
    out: dict[str, str] = {}
    for table in tables:
        for d, info in sorted(lake.partition_files("gold", table).items()):
            if d < day:
                out[f"{table}/{d.isoformat()}"] = info["fingerprint"]
    if None not in (versions := tuple(lake.listing_version("gold", table) for table in tables)):
        if len(_FINGERPRINTS) >= 8:
            _FINGERPRINTS.pop(next(iter(_FINGERPRINTS)))
        _FINGERPRINTS[(str(lake.root), tables, day, versions)] = out
    return out


#: The last few fingerprints taken while listings were kept, by (lake, tables, day, listing versions).
_FINGERPRINTS: dict[tuple, dict[str, str]] = {}


def history_before(fingerprint: dict[str, str], table: str, day: date) -> dict[str, str]:
    """``fingerprint`` (:func:`history_fingerprint`) without ``table``'s partition of ``day``: the history
    the previous session rested on, when ``day`` is the latest session of the fingerprint's history."""
    return {k: v for k, v in fingerprint.items() if k != f"{table}/{day.isoformat()}"}


def history_until(fingerprint: dict[str, str], day: date) -> dict[str, str]:
    """``fingerprint`` (:func:`history_fingerprint`) restricted to the sessions before ``day``: the
    history something built as of ``day`` rested on, when nothing before ``day`` changed since."""
    before = day.isoformat()
    return {k: v for k, v in fingerprint.items() if k.split("/", 1)[1] < before}


def record_history(lake: Lake, day: date, fingerprint: dict[str, str]) -> LakePath:
    """Write ``fingerprint`` (taken before building day's signals) to the gold_signals partition of ``day``, atomically."""
    text = json.dumps({"day": day.isoformat(), "history": fingerprint}, indent=1, sort_keys=True)
    return write_text_atomic(lake.partition_dir("gold", "gold_signals", day) / HISTORY_FILE, text)


def lake_fingerprint(lake: Lake) -> dict[str, str]:
    """:func:`history_fingerprint` of every partition of the history tables (one stat per partition),
    for checking many days at once with :func:`history_change` (``lake_now``)."""
    return history_fingerprint(lake, date.max)


def history_change(lake: Lake, day: date, lake_now: dict[str, str] | None = None) -> str | None:
    """Why day's answers no longer match the lake's history, or None when they do.

    Returns a sentence naming the sessions added, rebuilt or removed before ``day`` since its
    gold_signals were built, or saying that no history was recorded (signals from an older version,
    or not materialized). ``lake_now``: :func:`lake_fingerprint` taken once for many days (the
    partitions before ``day`` are its part), so checking every session costs one stat per partition
    instead of one per partition and later session.
    """
    path = lake.partition_dir("gold", "gold_signals", day) / HISTORY_FILE
    try:
        recorded = json.loads(path.read_text())["history"]
    except (OSError, ValueError, KeyError):
        return f"no history is recorded for the signals of {day} ({path})"
    if lake_now is None:
        current = history_fingerprint(lake, day)
    else:
        before = day.isoformat()
        current = {k: v for k, v in lake_now.items() if k.split("/", 1)[1] < before}
    if recorded == current:
        return None
    added = sorted({k.split("/")[1] for k in current.keys() - recorded.keys()})
    removed = sorted({k.split("/")[1] for k in recorded.keys() - current.keys()})
    rebuilt = sorted({k.split("/")[1] for k in current.keys() & recorded.keys() if current[k] != recorded[k]})
    parts = [f"{label} {', '.join(days[:5])}{' ...' if len(days) > 5 else ''}" for label, days in (("added", added), ("rebuilt", rebuilt), ("removed", removed)) if days]
    return f"the history before {day} changed since its signals were built ({'; '.join(parts)})"
