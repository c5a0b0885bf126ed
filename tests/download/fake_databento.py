"""Test double of ``databento.Historical``: prices requests from a table and writes real (header-only) DBN files.

``get_range(..., path=p)`` writes a DBN v3 header (databento_dbn ``Metadata.encode()``, zstd framed)
with the request's dataset, schema, stype_in, symbols and [start, end), which is what a real
download's header holds, so the raw-file catalog can tell what was downloaded. No network.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import databento_dbn as dbn
import zstandard


def ns(ts: datetime) -> int:
    """Nanoseconds since the epoch of an aware datetime."""
    return int(ts.astimezone(timezone.utc).timestamp()) * 1_000_000_000 + ts.microsecond * 1000


def write_header_only_dbn(path: Path, schema: str, symbols: list[str], start: datetime, end: datetime, stype_in: str = "parent", dataset: str = "GLBX.MDP3") -> Path:
    """A valid DBN file with no records whose header says what was requested."""
    meta = dbn.Metadata(
        dataset=dataset,
        start=ns(start),
        end=ns(end),
        stype_in=dbn.SType(stype_in),
        stype_out=dbn.SType.INSTRUMENT_ID,
        schema=dbn.Schema.from_str(schema),
        symbols=list(symbols),
        partial=[],
        not_found=[],
        mappings=[],
        ts_out=False,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(zstandard.ZstdCompressor().compress(bytes(meta.encode())))
    return path


class _Metadata:
    def __init__(self, owner: "FakeHistorical"):
        self.owner = owner

    def get_cost(self, **kwargs) -> float:
        self.owner.cost_calls.append(kwargs)
        return self.owner.cost_by_schema.get(kwargs["schema"], 0.0)


class _Timeseries:
    def __init__(self, owner: "FakeHistorical"):
        self.owner = owner

    def get_range(self, path, **kwargs):
        self.owner.range_calls.append(kwargs)
        if kwargs["schema"] in self.owner.fail_schemas:
            # A connection dropped mid-stream: half a file written, then an error.
            Path(path).write_bytes(b"DBN\x03partial")
            raise ConnectionError(f"connection reset while downloading {kwargs['schema']}")
        write_header_only_dbn(Path(path), kwargs["schema"], list(kwargs["symbols"]), kwargs["start"], kwargs["end"], kwargs["stype_in"], kwargs["dataset"])
        return None


class FakeHistorical:
    """Records ``get_cost`` / ``get_range`` calls; ``cost_by_schema`` USD per request; ``fail_schemas`` raise mid-download."""

    def __init__(self, cost_by_schema: dict[str, float] | None = None, fail_schemas: set[str] | None = None, real_client=None):
        self.cost_by_schema = cost_by_schema or {}
        self.fail_schemas = fail_schemas or set()
        self.cost_calls: list[dict] = []
        self.range_calls: list[dict] = []
        self.metadata = _Metadata(self)
        self.timeseries = _Timeseries(self)
        self.real_client = real_client  # holds the key, as a real client would
