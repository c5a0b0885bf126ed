"""Open interest of the session's options from Databento ``statistics`` records (pure: no Dagster).

CME publishes open interest as a statistics record with ``stat_type`` 9 (OPEN_INTEREST): its
``quantity`` is the open interest in contracts, ``ts_ref`` the trading date it describes, ``ts_recv``
when it was published (Databento statistics schema,
https://databento.com/docs/schemas-and-data-formats/statistics). Settlement (3), opening price (1)
and every other stat_type are prices or volumes, never open interest.

Point in time: session D opens at 18:00 ET on D-1; the open interest a feature of D may use is the
latest stat_type-9 publication (largest ``(ts_recv, sequence)``) with ``ts_recv`` before that open.
A later publication during the session is ignored (counted). A latest publication whose
``update_action`` is DELETE (2) withdraws the value: the option then has no open interest.

Layouts: DBN v1/v2 ``StatMsg.quantity`` is i32 (undefined = i32::MAX), v3 is i64 (undefined =
i64::MAX); both decode here to Int64 with the sentinel turned into null. ``ts_ref`` undefined
(u64::MAX) becomes null.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import date, datetime
from pathlib import Path

import numpy as np
import polars as pl

from spymaster_resources.raw_files import iter_records

UTC_NS = pl.Datetime("ns", "UTC")

#: databento_dbn.StatType.OPEN_INTEREST
STAT_OPEN_INTEREST = 9
#: databento_dbn.StatUpdateAction
UPDATE_NEW = 1
UPDATE_DELETE = 2
_UNDEF_TIMESTAMP = np.iinfo(np.uint64).max

#: Decoded statistics records (one row per record).
STATISTICS_SCHEMA: dict[str, pl.DataType] = {
    "instrument_id": pl.UInt32,
    "ts_event": UTC_NS,
    "ts_recv": UTC_NS,
    "ts_ref": UTC_NS,
    "sequence": pl.Int64,
    "stat_type": pl.UInt16,
    "update_action": pl.UInt8,
    "quantity": pl.Int64,
}

#: Columns of bronze_options_open_interest, in order.
OPEN_INTEREST_SCHEMA: dict[str, pl.DataType] = {
    "session_date": pl.Date,
    "instrument_id": pl.UInt32,
    "open_interest": pl.Int64,
    "ts_ref": UTC_NS,
    "ts_recv": UTC_NS,
}


def _ns_column(name: str, values: np.ndarray) -> pl.Series:
    undefined = values == _UNDEF_TIMESTAMP
    ints = pl.Series(name, np.where(undefined, 0, values).astype(np.int64))
    out = ints.cast(pl.Datetime("ns")).dt.replace_time_zone("UTC")
    return out.set(pl.Series(undefined), None) if undefined.any() else out  # type: ignore[arg-type]


def decode_statistics(records: np.ndarray) -> pl.DataFrame:
    """Statistics records (a ``DBNStore.to_ndarray`` chunk of any DBN version) -> :data:`STATISTICS_SCHEMA` rows.

    ``quantity`` (contracts for OPEN_INTEREST) is null where undefined: i32::MAX in DBN v1/v2
    records, i64::MAX in v3 (the field's width gives the version).
    """
    quantity = records["quantity"]
    undefined_quantity = np.iinfo(quantity.dtype).max
    return pl.DataFrame(
        [
            pl.Series("instrument_id", records["instrument_id"].astype(np.uint32)),
            _ns_column("ts_event", records["ts_event"]),
            _ns_column("ts_recv", records["ts_recv"]),
            _ns_column("ts_ref", records["ts_ref"]),
            pl.Series("sequence", records["sequence"].astype(np.int64)),
            pl.Series("stat_type", records["stat_type"].astype(np.uint16)),
            pl.Series("update_action", records["update_action"].astype(np.uint8)),
            pl.Series("quantity", quantity.astype(np.int64)).set(pl.Series(quantity == undefined_quantity), None),
        ]
    )


def read_statistics(paths: Iterable[Path], instrument_ids: Iterable[int], chunk_records: int) -> pl.DataFrame:
    """Statistics records of ``instrument_ids`` from DBN ``statistics`` files, decoded chunk by chunk.

    Returns :data:`STATISTICS_SCHEMA` rows in file order (files in the given order). Memory: one
    chunk of ``chunk_records`` records plus the selected rows (a chain's statistics are few).

    Raises:
        RawDataError: a file is truncated or corrupt, naming it (from ``iter_records``).
    """
    ids = np.fromiter((int(i) for i in instrument_ids), dtype=np.uint32)
    frames = []
    for path in paths:
        for records in iter_records(Path(path), chunk_records):
            selected = records[np.isin(records["instrument_id"], ids)]
            if len(selected):
                frames.append(decode_statistics(selected))
    if not frames:
        return pl.DataFrame(schema=STATISTICS_SCHEMA)
    return pl.concat(frames)


def open_interest_before(statistics: pl.DataFrame, session_date: date, session_open: datetime) -> tuple[pl.DataFrame, dict[str, object]]:
    """The open interest known at the session open, one row per instrument that has one.

    Args:
        statistics: :data:`STATISTICS_SCHEMA` rows (any stat types, any publication times).
        session_date: trade date D (written as ``session_date``).
        session_open: aware datetime of the session open (18:00 ET on D-1).

    Returns:
        (frame, counts). ``frame`` has :data:`OPEN_INTEREST_SCHEMA` columns (open_interest in
        contracts, ts_ref the trading date described, ts_recv the publication), sorted by
        instrument_id; it is built from stat_type 9 records with ts_recv < session_open only, the
        latest (ts_recv, sequence) per instrument winning. ``counts``: ``stat_types_seen`` (text
        "type:count, ..."), ``stat_records_not_open_interest`` (other stat types: ignored),
        ``open_interest_records``, ``open_interest_after_open`` (published at or after the open:
        ignored), ``open_interest_superseded`` (an older publication before the open),
        ``open_interest_undefined`` / ``open_interest_negative`` (latest value unusable: no row),
        ``open_interest_deleted`` (latest publication a DELETE: no row), ``open_interest_rows``.
    """
    open_ts = pl.lit(session_open).cast(UTC_NS)
    seen = Counter(statistics["stat_type"].to_list())
    oi = statistics.filter(pl.col("stat_type") == STAT_OPEN_INTEREST)
    before = oi.filter(pl.col("ts_recv") < open_ts)
    latest = before.sort(["ts_recv", "sequence"], maintain_order=True).group_by("instrument_id", maintain_order=True).last()
    deleted = latest.filter(pl.col("update_action") == UPDATE_DELETE)
    live = latest.filter(pl.col("update_action") != UPDATE_DELETE)
    undefined = live.filter(pl.col("quantity").is_null())
    negative = live.filter(pl.col("quantity") < 0)
    usable = live.filter(pl.col("quantity") >= 0)
    frame = (
        usable.with_columns(session_date=pl.lit(session_date, dtype=pl.Date), open_interest=pl.col("quantity"))
        .select([pl.col(name).cast(dtype) for name, dtype in OPEN_INTEREST_SCHEMA.items()])
        .sort("instrument_id")
    )
    counts: dict[str, object] = {
        "stat_types_seen": ", ".join(f"{k}:{v}" for k, v in sorted(seen.items())) or "none",
        "stat_records_not_open_interest": statistics.height - oi.height,
        "open_interest_records": oi.height,
        "open_interest_after_open": oi.height - before.height,
        "open_interest_superseded": before.height - latest.height,
        "open_interest_undefined": undefined.height,
        "open_interest_negative": negative.height,
        "open_interest_deleted": deleted.height,
        "open_interest_rows": frame.height,
    }
    return frame, counts
