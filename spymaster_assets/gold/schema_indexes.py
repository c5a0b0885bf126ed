"""The setup indexes as of one day, one :class:`SetupIndex` per vector schema (set of feature families).

Sessions differ in the data they have (bars only; trades; a 10-level book; MBO), so episodes carry
different feature families. An index never mixes vector schemas: for each schema S it holds the
earlier episodes whose families include S, projected onto S's columns and normalized there. A query
with families F is answered by the richest schema S within F (most dimensions) that has at least
``min_history_sessions`` sessions of history, else by the bars schema, which every episode has.

Layout on disk: ``<dir>/manifest.json`` (format, as_of, layout version, schemas) and one
``<dir>/schema=<families>/`` directory per schema holding a saved :class:`SetupIndex`.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from spymaster_resources.lake_paths import LakePath, lake_path, load_directory, replace_directory

from spymaster_core.config import SpymasterConfig
from .episodes import SETUP_KEY_SCHEMA
from .normalization import NormalizationStats, normalize
from .setup_index import META_COLUMNS, SetupIndex
from .vectors import parse_families, schema_dims, schema_version, vector_version

MANIFEST = "manifest.json"
BARS_SCHEMA = "bars"
_FORMAT = "schema-indexes-1"


class SchemaIndexes:
    """Setup indexes as of ``as_of``: ``indexes[families_label] -> SetupIndex`` (always holding ``"bars"``).

    ``weights``: the learned similarity weight of each full-layout dimension the vectors were
    normalized with (``normalization.normalize``), or None for equal weights; queries must be
    normalized with the same weights. ``weights_source`` says where they came from (e.g. the model's
    training window), for the metadata. ``provenance``: what the vectors were built from (JSON-able,
    saved in the manifest; ``as_of.build_index_as_of`` records the episodes' fingerprint and the statistics' digest, so
    the next session can tell whether it may extend this index). ``origin``: "built" from all
    history, or how :meth:`extended` made it, for the metadata.
    """

    def __init__(
        self,
        indexes: dict[str, SetupIndex],
        as_of: date | None,
        layout_version: str,
        config: SpymasterConfig,
        weights: np.ndarray | None = None,
        weights_source: str = "equal",
        provenance: dict | None = None,
        origin: str = "built",
    ):
        if BARS_SCHEMA not in indexes:
            raise ValueError("the setup indexes must hold the bars schema")
        self.indexes = indexes
        self.as_of = as_of
        self.layout_version = layout_version
        self.config = config
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float64)
        self.weights_source = weights_source
        self.provenance = dict(provenance or {})
        self.origin = origin

    @property
    def sessions(self) -> list[date]:
        """Sorted source sessions of every schema's index."""
        return sorted({s for index in self.indexes.values() for s in index.sessions})

    @property
    def schemas(self) -> list[str]:
        """Schema labels held, bars first then by number of dimensions."""
        return sorted(self.indexes, key=lambda label: (self.indexes[label].dim, label))

    def for_families(self, families: str) -> tuple[str, SetupIndex]:
        """(schema label, index) answering a query whose vector has the families of label ``families``.

        The richest held schema whose families are all in ``families`` and whose index has at least
        ``min_history_sessions`` sessions; else the bars schema. Raises ValueError for an unknown family.
        """
        present = parse_families(families)
        best = BARS_SCHEMA
        for label, index in self.indexes.items():
            if parse_families(label) <= present and len(index.sessions) >= self.config.min_history_sessions:
                if index.dim > self.indexes[best].dim:
                    best = label
        return best, self.indexes[best]

    @classmethod
    def build(
        cls,
        history: pl.DataFrame | None,
        stats: NormalizationStats,
        config: SpymasterConfig,
        as_of: date,
        weights: np.ndarray | None = None,
        weights_source: str = "equal",
        provenance: dict | None = None,
    ) -> "SchemaIndexes":
        """Index every history episode for each schema it supports.

        ``history``: gold_episodes rows of sessions before ``as_of`` (vector = full layout, nulls
        NaN; feature_families label; vector_version = layout version). Rows of another layout
        version are ignored. Schemas built: bars, plus every family set some history row has; a
        schema S indexes the rows whose families include S, normalized with ``stats`` on S's
        dimensions (robust z, clip, ``weights`` when given, L2). Raises ValueError on a point-in-time violation (a row on or
        after ``as_of``), from :meth:`SetupIndex.build`.
        """
        layout = vector_version(config)
        if history is not None:
            history = history.filter(pl.col("vector_version") == layout)
        labels = {BARS_SCHEMA}
        if history is not None and history.height:
            labels |= set(history["feature_families"].unique().to_list())
        indexes: dict[str, SetupIndex] = {}
        for label in sorted(labels):
            vectors, meta = _schema_rows(history, label, stats, weights, config)
            indexes[label] = SetupIndex.build(vectors, meta, config, as_of=as_of, vector_version=schema_version(config, label))
        return cls(indexes, as_of, layout, config, weights, weights_source, provenance, f"built from {history['session_date'].n_unique() if history is not None and history.height else 0} session(s)")

    def extended(
        self, rows: pl.DataFrame | None, stats: NormalizationStats, as_of: date, provenance: dict | None = None, in_place: bool = False
    ) -> "SchemaIndexes | None":
        """These indexes plus ``rows`` (gold_episodes of sessions after theirs, before ``as_of``), or None to rebuild.

        The caller guarantees that ``stats`` and :attr:`weights` are those the held vectors were
        normalized with. Each schema takes the rows whose families include it, normalized as in
        :meth:`build`, appended by :meth:`SetupIndex.extended`; the result equals :meth:`build` over
        the whole history. None when a row brings a family set no schema holds yet (a new schema
        indexes earlier rows too) or a partition cannot be extended exactly (approximate).
        ``in_place``: each schema's index is extended in place and retired (:meth:`SetupIndex.extended`),
        only for a caller holding the sole reference; when the result is None nothing was changed.
        Raises ValueError on a point-in-time violation (from :meth:`SetupIndex.extended`).
        """
        if rows is not None:
            rows = rows.filter(pl.col("vector_version") == self.layout_version)
        labels = set(rows["feature_families"].unique().to_list()) if rows is not None and rows.height else set()
        if labels - set(self.indexes):
            return None
        added = {label: _schema_rows(rows, label, stats, self.weights, self.config) for label in self.indexes}
        if not all(self.indexes[label].extendable(meta) for label, (_, meta) in added.items()):
            return None
        indexes: dict[str, SetupIndex] = {}
        for label, index in self.indexes.items():
            vectors, meta = added[label]
            grown = index.extended(vectors, meta, as_of=as_of, in_place=in_place)
            if grown is None:
                return None
            indexes[label] = grown
        added = sorted(set(rows["session_date"].to_list())) if rows is not None and rows.height else []
        origin = f"extended the index of {self.as_of} by {len(added)} session(s)"
        return SchemaIndexes(indexes, as_of, self.layout_version, self.config, self.weights, self.weights_source, provenance, origin)

    def save(self, directory: LakePath, vectors: bool = True) -> LakePath:
        """Write every schema's index and the manifest to a staging directory, then swap it in for
        ``directory`` (local or on object storage).

        ``vectors=False`` writes the manifests only (each schema's partitions with their counts,
        kinds and outcome counts; ``"vectors_saved": false``): the description gold_setup_index
        keeps per session, whose vectors are the gold_episodes partitions themselves, normalized
        again when the index is needed (``as_of.index_as_of``), so a session's write does not grow
        with history. A failure at any point leaves the previous indexes whole (``lake_paths.replace_directory``).
        """
        return replace_directory(lake_path(directory), lambda root: self._write(root, vectors))

    def _write(self, root: Path, vectors: bool = True) -> None:
        for label, index in self.indexes.items():
            if vectors:
                index.save(root / f"schema={label}")
            else:
                (root / f"schema={label}").mkdir()
                (root / f"schema={label}" / MANIFEST).write_text(json.dumps(index.manifest(), indent=2, sort_keys=True))
        manifest = {
            "vectors_saved": vectors,
            "format": _FORMAT,
            "as_of": self.as_of.isoformat() if self.as_of else None,
            "layout_version": self.layout_version,
            "schemas": {label: {"dir": f"schema={label}", "dim": index.dim, "n_vectors": sum(s.n_vectors for s in index.stats.values()), "sessions": len(index.sessions)} for label, index in self.indexes.items()},
            "source_session_dates": [s.isoformat() for s in self.sessions],
            "similarity_weights": None if self.weights is None else [float(w) for w in self.weights],
            "similarity_weights_source": self.weights_source,
            "provenance": self.provenance,
        }
        (root / MANIFEST).write_text(json.dumps(manifest, indent=2))

    @classmethod
    def load(cls, directory: LakePath, config: SpymasterConfig) -> "SchemaIndexes":
        """Read indexes written by :meth:`save` (local, or on object storage through a temporary copy).

        Raises FileNotFoundError when the manifest or a schema directory is missing, ValueError when
        the manifest is of another format or layout version than ``config`` gives.
        """
        return load_directory(directory, MANIFEST, "setup indexes", lambda root: cls._load_local(root, config))

    @classmethod
    def _load_local(cls, root: Path, config: SpymasterConfig) -> "SchemaIndexes":
        """:meth:`load` from a local directory."""
        path = root / MANIFEST
        manifest = json.loads(path.read_text())
        if manifest.get("format") != _FORMAT:
            raise ValueError(f"{path}: not a {_FORMAT} manifest (written by an older version: rematerialize gold_setup_index)")
        if manifest["layout_version"] != vector_version(config):
            raise ValueError(f"{path}: vector layout {manifest['layout_version']} differs from the configuration's {vector_version(config)}: rematerialize gold_setup_index")
        indexes = {label: SetupIndex.load(root / entry["dir"], config) for label, entry in manifest["schemas"].items()}
        as_of = date.fromisoformat(manifest["as_of"]) if manifest.get("as_of") else None
        weights = manifest.get("similarity_weights")
        return cls(
            indexes,
            as_of,
            manifest["layout_version"],
            config,
            None if weights is None else np.asarray(weights, dtype=np.float64),
            manifest.get("similarity_weights_source", "equal"),
            manifest.get("provenance"),
            origin="loaded",
        )

    def summary(self) -> pl.DataFrame:
        """One row per (schema, partition_key): schema, dim, partition_key, n_vectors, kind, recall."""
        rows = [
            {"schema": label, "dim": index.dim, "partition_key": key, "n_vectors": s.n_vectors, "kind": s.kind, "recall": s.recall}
            for label in self.schemas
            for key, s in sorted(self.indexes[label].stats.items())
            for index in [self.indexes[label]]
        ]
        return pl.DataFrame(
            rows,
            schema={"schema": pl.Utf8, "dim": pl.Int64, "partition_key": pl.Utf8, "n_vectors": pl.Int64, "kind": pl.Utf8, "recall": pl.Float64},
            orient="row",
        )


def _schema_rows(
    episodes: pl.DataFrame | None, label: str, stats: NormalizationStats, weights: np.ndarray | None, config: SpymasterConfig
) -> tuple[np.ndarray, pl.DataFrame]:
    """(normalized vectors (n, len(schema dims)) float32, index metadata) of the ``episodes`` whose families include schema ``label``.

    Shared by :meth:`SchemaIndexes.build` and :meth:`SchemaIndexes.extended` so both normalize alike
    (robust z, clip, ``weights``, L2 on the schema's dimensions); empty arrays when no row qualifies.
    """
    dims = schema_dims(config, label)
    rows = None
    if episodes is not None and episodes.height:
        wanted = parse_families(label)
        families = episodes["feature_families"].unique().to_list()
        members = [f for f in families if wanted <= parse_families(f)]
        # Every row has the bars family: no filtered copy of a decade's vectors for that schema.
        rows = episodes if len(members) == len(families) else episodes.filter(pl.col("feature_families").is_in(members))
    if rows is None or rows.height == 0:
        return np.zeros((0, len(dims)), dtype=np.float32), pl.DataFrame(schema={"partition_key": pl.String(), **SETUP_KEY_SCHEMA, "distance_atr": pl.Float64(), "outcome": pl.String()})
    out = np.empty((rows.height, len(dims)), dtype=np.float32)
    # A slice of the vector column at a time: the raw vectors are never copied whole next to the normalized ones.
    for start in range(0, rows.height, _SCHEMA_SLICE_ROWS):
        part = rows["vector"].slice(start, _SCHEMA_SLICE_ROWS)
        raw = part.to_numpy().astype(np.float32, copy=False).reshape(part.len(), -1)
        out[start:start + part.len()] = normalize(raw, stats, config.robust_z_clip, dims, weights)
    return out, rows.select("partition_key", *META_COLUMNS)


#: Rows normalized at a time by :func:`_schema_rows` (a few MB of raw vectors).
_SCHEMA_SLICE_ROWS = 16384
