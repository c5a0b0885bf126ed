"""gold_setup_index: one FAISS inner-product index per partition (level kind x direction x time bucket).

Vectors are the normalized setup vectors (unit L2 norm, see ``normalization.normalize``), so the
inner product is cosine similarity. A partition uses the exact ``IndexFlatIP`` while it holds fewer
than ``config.approximate_index_min_vectors`` vectors and an HNSW graph (Malkov & Yashunin 2018,
``faiss.IndexHNSWFlat``) once larger, with its recall@top_k against exact search measured at build
time. Searches over-fetch and then keep at most ``max_neighbours_per_session`` neighbours per past
session (the successive anchors of one session are near-duplicates of each other).
"""

from __future__ import annotations

import json
import os
import re
from bisect import bisect_left
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import faiss
import numpy as np
import polars as pl
from numba import njit

from spymaster_resources.lake_paths import LakePath, lake_path, load_directory, replace_directory

from spymaster_core.config import OUTCOMES, SpymasterConfig
from .episodes import SETUP_KEY_SCHEMA
from .distance_baseline import distance_bins
from .retrieval import base_rate, outcome_codes

#: Columns of each partition's metadata frame, aligned with the FAISS row ids of that partition.
META_COLUMNS: tuple[str, ...] = ("session_date", "ts_event", "level_kind", "direction", "time_bucket", "distance_atr", "outcome")
HNSW_NEIGHBOURS = 32  # M: graph degree (faiss default recommendation for D ~ 50)
HNSW_EF_CONSTRUCTION = 64
HNSW_EF_SEARCH = 128
RECALL_QUERIES = 200
MANIFEST = "manifest.json"
META_FILE = "meta.parquet"
_EPOCH = date(1970, 1, 1)
# A session queries a partition with a handful of setups: OpenMP's thread start-up costs more than the
# scan itself (a 15,000-vector partition: 1.7 ms on one thread, 3.4 ms on two on a busy 2-core machine).
faiss.omp_set_num_threads(1)


@dataclass(frozen=True)
class PartitionStats:
    """Build statistics of one partition: vector count, index kind ("flat"/"hnsw") and recall@top_k (1.0 for flat)."""

    n_vectors: int
    kind: str
    recall: float


@dataclass
class _Partition:
    index: faiss.Index
    meta: pl.DataFrame  # META_COLUMNS + partition_key + row_id, row i = FAISS id i
    session_code: np.ndarray  # int32 dense code of session_date (order of SetupIndex.sessions)
    outcome_code: np.ndarray  # int8 index into OUTCOMES
    distance_atr: np.ndarray  # float64 signed distance of each row, in ATR (the distance band filter)


@njit(cache=True)
def _filter_candidates(cand_ids, cand_sims, session_code, cutoff_code, k, max_per_session, n_sessions, row_band, query_band):
    """Keep, per query row, the first k candidates whose session is < cutoff and not yet seen max_per_session times,
    and, when the query's |distance| band (``query_band``, ``distance_baseline.distance_bins``) is >= 0, whose row band is the same.

    Candidates come best first from FAISS (id -1 = none). O(F) per row: a per-session counter
    array is reset after each row by walking only the kept ids.
    """
    m, width = cand_ids.shape
    out_ids = np.full((m, k), -1, dtype=np.int64)
    out_sims = np.full((m, k), np.nan, dtype=np.float32)
    n_found = np.zeros(m, dtype=np.int64)
    counts = np.zeros(max(n_sessions, 1), dtype=np.int32)
    for r in range(m):
        n = 0
        band = query_band[r]
        for j in range(width):
            i = cand_ids[r, j]
            if i < 0:
                continue
            s = session_code[i]
            if s >= cutoff_code or counts[s] >= max_per_session:
                continue
            if band >= 0 and row_band[i] != band:
                continue
            counts[s] += 1
            out_ids[r, n] = i
            out_sims[r, n] = cand_sims[r, j]
            n += 1
            if n == k:
                break
        n_found[r] = n
        for t in range(n):
            counts[session_code[out_ids[r, t]]] = 0
    return out_ids, out_sims, n_found


def safe_partition_name(partition_key: str) -> str:
    """File-system-safe stem for a partition key: ``"PM_HIGH|UP|0-15"`` -> ``"PM_HIGH__UP__0-15"``."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", partition_key.replace("|", "__"))


def _days(dates: pl.Series) -> np.ndarray:
    return dates.cast(pl.Int32).to_numpy()


class _RetiredPartitions(dict):
    """The partitions of an index extended in place: its FAISS indexes now hold later sessions too."""

    def _retired(self, *args, **kwargs):
        raise RuntimeError("this setup index was extended in place (SetupIndex.extended(in_place=True)); use the extended one")

    get = __getitem__ = __contains__ = __iter__ = __len__ = items = keys = values = _retired


class SetupIndex:
    """FAISS indexes of normalized setup vectors, one per partition_key, with per-row metadata.

    Attributes: ``vector_version``, ``as_of`` (the day D the index serves; all sessions < D),
    ``dim`` (D), ``sessions`` (sorted source session dates), ``stats`` (partition_key ->
    :class:`PartitionStats`), ``config``.
    """

    def __init__(
        self,
        partitions: dict[str, _Partition],
        sessions: list[date],
        dim: int,
        vector_version: str | None,
        as_of: date | None,
        stats: dict[str, PartitionStats],
        config: SpymasterConfig,
    ) -> None:
        self._partitions = partitions
        self.sessions = sessions
        self.dim = dim
        self.vector_version = vector_version
        self.as_of = as_of
        self.stats = stats
        self.config = config
        self._base_rates: dict[str, np.ndarray] | None = None

    # ------------------------------------------------------------------ build
    @classmethod
    def build(
        cls,
        vectors_normalized: np.ndarray,
        meta: pl.DataFrame,
        config: SpymasterConfig,
        *,
        as_of: date | None = None,
        vector_version: str | None = None,
    ) -> "SetupIndex":
        """Build one index per partition_key.

        vectors_normalized: (n, D) float32, rows L2-normalized. meta: n rows aligned with the
        vectors, columns partition_key plus :data:`META_COLUMNS` (an optional vector_version column
        must hold one value). Partitions with fewer than ``approximate_index_min_vectors`` vectors
        get ``IndexFlatIP``; larger ones ``IndexHNSWFlat(D, 32, METRIC_INNER_PRODUCT)`` with
        efSearch 128 and recall@top_k measured on up to 200 held-in queries against exact search.

        Raises ValueError on misaligned rows, missing columns, unknown outcomes, mixed vector
        versions, or (point in time) any session_date >= ``as_of``.
        """
        x = np.ascontiguousarray(vectors_normalized, dtype=np.float32)
        if x.ndim != 2:
            raise ValueError(f"vectors must be 2-D (n, D), got shape {x.shape}")
        if x.shape[0] != meta.height:
            raise ValueError(f"{x.shape[0]} vectors but {meta.height} metadata rows")
        missing = [c for c in ("partition_key", *META_COLUMNS) if c not in meta.columns]
        if missing:
            raise ValueError(f"index metadata lacks columns {missing}")
        if "vector_version" in meta.columns and meta.height:
            versions = meta["vector_version"].unique().to_list()
            if len(versions) != 1:
                raise ValueError(f"an index never mixes vector versions; got {sorted(map(str, versions))}")
            if vector_version is not None and versions[0] != vector_version:
                raise ValueError(f"metadata vector_version {versions[0]!r} != requested {vector_version!r}")
            vector_version = versions[0]
        if as_of is not None and meta.height:
            late = meta.filter(pl.col("session_date") >= as_of)
            if late.height:
                raise ValueError(
                    f"point-in-time violation: index as of {as_of} would hold sessions "
                    f"{sorted({d.isoformat() for d in late['session_date'].to_list()})}"
                )
        outcome_codes(meta["outcome"])  # raises on an unknown label

        sessions = sorted(set(meta["session_date"].to_list()))
        session_days = np.array([(s - _EPOCH).days for s in sessions], dtype=np.int64)
        indexed = meta.select("partition_key", *META_COLUMNS).with_row_index("_source_row")
        partitions: dict[str, _Partition] = {}
        stats: dict[str, PartitionStats] = {}
        for (key,), part_meta in indexed.partition_by("partition_key", as_dict=True, maintain_order=True).items():
            rows = part_meta["_source_row"].to_numpy()
            part_vectors = np.ascontiguousarray(x[rows])
            index, part_stats = _build_partition_index(part_vectors, config)
            part_meta = part_meta.drop("_source_row").with_row_index("row_id")
            partitions[key] = _make_partition(index, part_meta, session_days)
            stats[key] = part_stats
        return cls(partitions, sessions, x.shape[1], vector_version, as_of, stats, config)

    def extended(self, vectors_normalized: np.ndarray, meta: pl.DataFrame, *, as_of: date, in_place: bool = False) -> "SetupIndex | None":
        """A new index: this one plus later sessions' vectors appended, or None when it cannot be extended exactly.

        ``vectors_normalized`` and ``meta`` as :meth:`build` (normalized with the same statistics
        and weights as this index's vectors: the caller's duty), every session_date after this
        index's last session and before ``as_of``. Vectors are appended to their partition in
        order, so the result equals :meth:`build` over all rows (every exact ``IndexFlatIP``
        partition holds the same vectors in the same order, bit for bit). Returns None when a
        partition is approximate (HNSW) or would reach ``approximate_index_min_vectors``: an HNSW
        graph depends on its insertion batches, so it is rebuilt. ``self`` is not modified, unless
        ``in_place``: then its FAISS indexes take the new vectors (no copy of a decade's vectors per
        session) and ``self`` is retired, any later use of it raising RuntimeError; only for a caller
        that holds the sole reference (the date-order walk, ``as_of.sole_user_of_indexes``).
        Raises ValueError on misaligned rows, a session not after this index's, or one on or after ``as_of``.
        """
        x = np.ascontiguousarray(vectors_normalized, dtype=np.float32)
        if x.ndim != 2 or x.shape[0] != meta.height or (x.shape[0] and x.shape[1] != self.dim):
            raise ValueError(f"{x.shape} vectors for {meta.height} metadata rows of a {self.dim}-dimension index")
        new_sessions = sorted(set(meta["session_date"].to_list()))
        if new_sessions and ((self.sessions and new_sessions[0] <= self.sessions[-1]) or new_sessions[-1] >= as_of):
            raise ValueError(f"an index of sessions up to {self.sessions[-1] if self.sessions else None} as of {as_of} cannot take sessions {new_sessions[0]}..{new_sessions[-1]}")
        outcome_codes(meta["outcome"])  # raises on an unknown label
        if not self.extendable(meta):
            return None
        sessions = self.sessions + new_sessions
        session_days = np.array([(s - _EPOCH).days for s in sessions], dtype=np.int64)
        indexed = meta.select("partition_key", *META_COLUMNS).with_row_index("_source_row")
        added = indexed.partition_by("partition_key", as_dict=True, maintain_order=True) if meta.height else {}
        partitions: dict[str, _Partition] = {}
        stats: dict[str, PartitionStats] = {}
        for key in list(self._partitions) + [k for (k,) in added if k not in self._partitions]:
            old = self._partitions.get(key)
            rows = added.get((key,))
            index = faiss.IndexFlatIP(self.dim) if old is None else old.index if in_place else faiss.clone_index(old.index)
            part_meta = old.meta if old is not None else None
            if rows is None:
                partitions[key] = _Partition(index, old.meta, old.session_code, old.outcome_code, old.distance_atr)
            else:
                index.add(np.ascontiguousarray(x[rows["_source_row"].to_numpy()]))
                start = 0 if old is None else old.meta.height
                fresh = rows.drop("_source_row").with_row_index("row_id", offset=start)
                added_part = _make_partition(index, fresh, session_days)
                if old is None:
                    partitions[key] = added_part
                else:
                    # The earlier rows' codes stand (their sessions keep their places: new ones come after).
                    partitions[key] = _Partition(
                        index,
                        pl.concat([part_meta, fresh]),
                        np.concatenate([old.session_code, added_part.session_code]),
                        np.concatenate([old.outcome_code, added_part.outcome_code]),
                        np.concatenate([old.distance_atr, added_part.distance_atr]),
                    )
            stats[key] = PartitionStats(int(index.ntotal), "flat", 1.0)
        if in_place:
            self._partitions = _RetiredPartitions()
        return SetupIndex(partitions, sessions, self.dim, self.vector_version, as_of, stats, self.config)

    def extendable(self, meta: pl.DataFrame) -> bool:
        """True when :meth:`extended` can append the rows of ``meta`` (its partition_key column) exactly:
        every partition is flat and none would reach ``approximate_index_min_vectors``."""
        if any(s.kind != "flat" for s in self.stats.values()):
            return False
        counts = dict(meta.group_by("partition_key").len().iter_rows()) if meta.height else {}
        return all(self.n_vectors(key) + n < self.config.approximate_index_min_vectors for key, n in counts.items())

    # ----------------------------------------------------------------- access
    @property
    def partition_keys(self) -> list[str]:
        """Partition keys present in the index, sorted."""
        return sorted(self._partitions)

    def meta(self, partition_key: str) -> pl.DataFrame:
        """Metadata of a partition (row_id = FAISS id, plus :data:`META_COLUMNS`); empty if absent."""
        part = self._partitions.get(partition_key)
        if part is None:
            return pl.DataFrame(schema={"row_id": pl.UInt32, "partition_key": pl.String, **_meta_schema()})
        return part.meta

    def n_vectors(self, partition_key: str) -> int:
        """Vectors held in a partition (0 if absent)."""
        part = self._partitions.get(partition_key)
        return 0 if part is None else int(part.index.ntotal)

    def partition_base_rates(self) -> dict[str, np.ndarray]:
        """partition_key -> add-one-smoothed outcome frequencies, shape (3,) in OUTCOMES order (retrieval.base_rate).

        Computed once per index (an index never changes after it is built or loaded).
        """
        if self._base_rates is None:
            self._base_rates = {key: base_rate(part.outcome_code) for key, part in self._partitions.items()}
        return self._base_rates

    def outcome_codes_of(self, partition_key: str, ids: np.ndarray) -> np.ndarray:
        """Outcome codes (int8 index into OUTCOMES) of partition row ``ids``; -1 where the id is -1 (no neighbour)."""
        ids = np.asarray(ids)
        part = self._partitions.get(partition_key)
        if part is None or part.outcome_code.size == 0:
            return np.full(ids.shape, -1, dtype=np.int8)
        return np.where(ids >= 0, part.outcome_code[np.clip(ids, 0, None)], -1).astype(np.int8)

    def vectors_of(self, partition_key: str, ids: np.ndarray) -> np.ndarray:
        """The stored normalized vectors of partition rows ``ids`` (all >= 0): float32 (len(ids), D). Raises KeyError for an absent partition."""
        index = self._partitions[partition_key].index
        return np.vstack([index.reconstruct(int(i)) for i in np.asarray(ids).ravel()]) if len(ids) else np.zeros((0, self.dim), dtype=np.float32)

    # ----------------------------------------------------------------- search
    def search_batch(
        self,
        partition_key: str,
        queries: np.ndarray,
        k: int | None = None,
        max_per_session: int | None = None,
        exclude_on_or_after: date | None = None,
        distance_atr: np.ndarray | None = None,
        bands: tuple[float, int] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Fast path: neighbours of m queries as arrays, best first.

        queries: (m, D) float32 normalized vectors. Returns (ids (m, k) int64 partition row ids,
        -1 padded; similarities (m, k) float32 cosine, NaN padded). At most ``max_per_session``
        (default config.max_neighbours_per_session) per session_date, only sessions before
        ``exclude_on_or_after`` when given; with the queries' ``distance_atr`` (m,), only rows in the
        same |distance| band (filter-then-rank: ``bands`` = (band width in ATR, number of bands), the
        last one open, as the distance lookup's cells; default the index configuration's
        ``distance_bin_atr`` and ``distance_bins``). FAISS is asked for k*4 candidates, doubling for the
        queries still short until they have k or the partition is exhausted.
        Raises ValueError if the query width is not D.
        """
        k = self.config.top_k if k is None else int(k)
        max_per_session = self.config.max_neighbours_per_session if max_per_session is None else int(max_per_session)
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if q.shape[1] != self.dim:
            raise ValueError(f"queries have {q.shape[1]} dimensions, index has {self.dim}")
        m = q.shape[0]
        part = self._partitions.get(partition_key)
        if part is None or part.index.ntotal == 0 or m == 0 or k <= 0:
            return np.full((m, max(k, 0)), -1, dtype=np.int64), np.full((m, max(k, 0)), np.nan, dtype=np.float32)
        cutoff = len(self.sessions)
        if exclude_on_or_after is not None:
            cutoff = bisect_left(self.sessions, exclude_on_or_after)  # sessions are sorted; O(log n), not a decade's array per batch
        total = int(part.index.ntotal)
        fetch = min(total, k * 4)
        if distance_atr is None:  # no band filter: every query's band is -1, the rows' are never read
            query_band, row_band = np.full(m, -1, dtype=np.int64), np.zeros(1, dtype=np.int64)
        else:
            band_atr, n_bands = bands if bands is not None else (self.config.distance_bin_atr, self.config.distance_bins)
            query_band = distance_bins(np.asarray(distance_atr, dtype=np.float64).reshape(m), band_atr, int(n_bands))
            row_band = distance_bins(part.distance_atr, band_atr, int(n_bands))
        sims, ids = part.index.search(q, fetch)
        out_ids, out_sims, found = _filter_candidates(ids, sims, part.session_code, cutoff, k, max_per_session, len(self.sessions), row_band, query_band)
        pending = np.flatnonzero(found < k) if fetch < total else np.empty(0, dtype=np.int64)
        while pending.size:
            fetch = min(total, fetch * 2)
            sims, ids = part.index.search(np.ascontiguousarray(q[pending]), fetch)
            more_ids, more_sims, more_found = _filter_candidates(ids, sims, part.session_code, cutoff, k, max_per_session, len(self.sessions), row_band, query_band[pending])
            out_ids[pending], out_sims[pending] = more_ids, more_sims
            pending = pending[more_found < k] if fetch < total else np.empty(0, dtype=np.int64)
        return out_ids, out_sims

    def neighbours_frame(self, partition_key: str, ids: np.ndarray, similarities: np.ndarray) -> pl.DataFrame:
        """Long frame of the neighbours from :meth:`search_batch`: one row per (query, rank) found.

        Columns: query (Int64, row of the query batch), rank (Int32, 1 = most similar),
        similarity (Float32, cosine), then :data:`META_COLUMNS` of the neighbour and its row_id.
        """
        ids = np.atleast_2d(ids)
        similarities = np.atleast_2d(similarities)
        query, rank = np.nonzero(ids >= 0)  # row-major: queries in order, ranks ascending
        schema = {"query": pl.Int64, "rank": pl.Int32, "similarity": pl.Float32, "row_id": pl.UInt32, **_meta_schema()}
        if query.size == 0:
            return pl.DataFrame(schema=schema)
        meta = self._partitions[partition_key].meta
        found = meta.select(pl.col("row_id", *META_COLUMNS).gather(pl.Series(ids[query, rank])))
        return pl.DataFrame(
            {
                "query": query.astype(np.int64),
                "rank": (rank + 1).astype(np.int32),
                "similarity": similarities[query, rank].astype(np.float32),
            }
        ).hstack(found).select(list(schema))

    def search(
        self,
        partition_key: str,
        queries: np.ndarray,
        k: int | None = None,
        max_per_session: int | None = None,
        exclude_on_or_after: date | None = None,
    ) -> list[pl.DataFrame]:
        """Neighbours of each of m queries as a list of m frames, best first.

        Each frame: rank (Int32), similarity (Float32 cosine), session_date, ts_event, level_kind,
        direction, time_bucket, outcome, row_id; at most k rows and at most ``max_per_session`` per
        session_date. Same arguments and errors as :meth:`search_batch`.
        """
        ids, sims = self.search_batch(partition_key, queries, k, max_per_session, exclude_on_or_after)
        frame = self.neighbours_frame(partition_key, ids, sims)
        groups = frame.partition_by("query", as_dict=True, maintain_order=True, include_key=False)
        empty = frame.drop("query").clear()
        return [groups.get((i,), empty) for i in range(ids.shape[0])]

    # ------------------------------------------------------------ persistence
    def manifest(self) -> dict:
        """JSON-able description: vector_version, as_of, dim, source session dates, and per partition its file, counts, kind, recall."""
        names: dict[str, str] = {}
        for key in sorted(self._partitions):
            name = safe_partition_name(key)
            while name in names.values():  # two keys differing only in unsafe characters
                name += "_"
            names[key] = name
        return {
            "format": 1,
            "metric": "inner_product",
            "vector_version": self.vector_version,
            "as_of": self.as_of.isoformat() if self.as_of else None,
            "dim": self.dim,
            "n_vectors": sum(int(p.index.ntotal) for p in self._partitions.values()),
            "source_session_dates": [s.isoformat() for s in self.sessions],
            "partitions": {
                key: {
                    "file": f"{names[key]}.faiss",
                    "n_vectors": self.stats[key].n_vectors,
                    "kind": self.stats[key].kind,
                    "recall": self.stats[key].recall,
                    "outcome_counts": dict(
                        zip(OUTCOMES, np.bincount(part.outcome_code, minlength=len(OUTCOMES)).tolist())
                    ),
                }
                for key, part in sorted(self._partitions.items())
            },
        }

    def save(self, directory: str | os.PathLike | LakePath) -> LakePath:
        """Write the index to ``directory`` atomically and return its path.

        Files: one ``<safe partition name>.faiss`` per partition (faiss.write_index),
        ``meta.parquet`` (all partitions' metadata with partition_key and row_id) and
        ``manifest.json`` (written last). Everything goes to a sibling temporary directory first,
        which then replaces ``directory`` by rename; an existing directory is moved aside and only
        deleted after the rename succeeded, so a failure at any point leaves the previous index
        whole (and removes the temporary files). ``directory`` may be on object storage
        (``lake_paths.replace_directory``).
        """
        return replace_directory(lake_path(directory), self._write)

    def _write(self, staging: Path) -> None:
        manifest = self.manifest()
        for key, entry in manifest["partitions"].items():
            faiss.write_index(self._partitions[key].index, str(staging / entry["file"]))
        metas = [self._partitions[key].meta for key in sorted(self._partitions)]
        meta = pl.concat(metas) if metas else self.meta("")
        meta.write_parquet(staging / META_FILE, compression="zstd")
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))

    @classmethod
    def load(cls, directory: str | os.PathLike | LakePath, config: SpymasterConfig) -> "SetupIndex":
        """Read an index written by :meth:`save` (local, or on object storage through a temporary copy).

        Raises FileNotFoundError naming the path if the directory, manifest, metadata or a
        partition file is missing, and ValueError naming the path if the manifest is unreadable
        or the files disagree with it (counts, dimension).
        """
        return load_directory(directory, MANIFEST, "setup index", lambda root: cls._load_local(root, config))

    @classmethod
    def _load_local(cls, root: Path, config: SpymasterConfig) -> "SetupIndex":
        """:meth:`load` from a local directory."""
        manifest_path = root / MANIFEST
        if not manifest_path.is_file():
            raise FileNotFoundError(f"setup index incomplete: {manifest_path} does not exist")
        try:
            manifest = json.loads(manifest_path.read_text())
            entries = manifest["partitions"]
            dim = int(manifest["dim"])
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"setup index manifest {manifest_path} is unreadable: {error}") from error
        meta_path = root / META_FILE
        if not meta_path.is_file():
            raise FileNotFoundError(f"setup index incomplete: {meta_path} does not exist")
        meta = pl.read_parquet(meta_path)
        missing = [c for c in META_COLUMNS if c not in meta.columns]
        if missing:
            raise ValueError(f"setup index {root}: {meta_path} lacks {missing} (written by an older version: rematerialize gold_setup_index)")
        sessions = [date.fromisoformat(s) for s in manifest["source_session_dates"]]
        session_days = np.array([(s - _EPOCH).days for s in sessions], dtype=np.int64)
        by_key = meta.partition_by("partition_key", as_dict=True, maintain_order=True) if meta.height else {}
        partitions: dict[str, _Partition] = {}
        stats: dict[str, PartitionStats] = {}
        for key, entry in entries.items():
            path = root / entry["file"]
            if not path.is_file():
                raise FileNotFoundError(f"setup index incomplete: {path} does not exist")
            index = faiss.read_index(str(path))
            part_meta = by_key.get((key,))
            if part_meta is None or part_meta.height != index.ntotal or index.ntotal != entry["n_vectors"]:
                raise ValueError(
                    f"setup index {root}: partition {key!r} has {index.ntotal} vectors in {path}, "
                    f"{0 if part_meta is None else part_meta.height} metadata rows, manifest says {entry['n_vectors']}"
                )
            if index.d != dim:
                raise ValueError(f"setup index {root}: {path} has dimension {index.d}, manifest says {dim}")
            partitions[key] = _make_partition(index, part_meta.sort("row_id"), session_days)
            stats[key] = PartitionStats(int(entry["n_vectors"]), str(entry["kind"]), float(entry["recall"]))
        if meta.height != sum(p.index.ntotal for p in partitions.values()):
            raise ValueError(f"setup index {root}: {meta_path} holds rows of partitions not in the manifest")
        as_of = date.fromisoformat(manifest["as_of"]) if manifest.get("as_of") else None
        return cls(partitions, sessions, dim, manifest.get("vector_version"), as_of, stats, config)


def _meta_schema() -> dict[str, pl.DataType]:
    return {**SETUP_KEY_SCHEMA, "distance_atr": pl.Float64(), "outcome": pl.String()}


def _make_partition(index: faiss.Index, meta: pl.DataFrame, session_days: np.ndarray) -> _Partition:
    """Attach the numpy lookups the search kernel needs (dense session codes, outcome codes)."""
    days = _days(meta["session_date"])
    session_code = np.searchsorted(session_days, days).astype(np.int32)
    if session_code.size and (session_code.max() >= len(session_days) or not np.array_equal(session_days[session_code], days)):
        raise ValueError("index metadata holds sessions not in the index's session list")
    return _Partition(index, meta, session_code, outcome_codes(meta["outcome"]), meta["distance_atr"].cast(pl.Float64).to_numpy())


def _build_partition_index(vectors: np.ndarray, config: SpymasterConfig) -> tuple[faiss.Index, PartitionStats]:
    """Exact flat index for a small partition; HNSW with measured recall@top_k for a large one."""
    n, dim = vectors.shape
    if n < config.approximate_index_min_vectors:
        index = faiss.IndexFlatIP(dim)
        index.add(vectors)
        return index, PartitionStats(n, "flat", 1.0)
    index = faiss.IndexHNSWFlat(dim, HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    index.add(vectors)
    index.hnsw.efSearch = max(HNSW_EF_SEARCH, config.top_k)
    return index, PartitionStats(n, "hnsw", measure_recall(index, vectors, config.top_k))


def measure_recall(index: faiss.Index, vectors: np.ndarray, k: int, n_queries: int = RECALL_QUERIES) -> float:
    """Recall@k of ``index`` against exact inner-product search, on up to ``n_queries`` held-in vectors.

    Recall = mean over queries of |approximate top-k ids & exact top-k ids| / k (k capped at n).
    Queries are a fixed-seed sample of the indexed vectors. Returns a value in [0, 1].
    """
    n = vectors.shape[0]
    k = min(k, n)
    if n == 0 or k == 0:
        return 1.0
    rng = np.random.default_rng(0)
    sample = rng.choice(n, size=min(n_queries, n), replace=False)
    queries = np.ascontiguousarray(vectors[sample])
    _, exact = faiss.knn(queries, vectors, k, metric=faiss.METRIC_INNER_PRODUCT)
    _, approximate = index.search(queries, k)
    hits = sum(len(np.intersect1d(a[a >= 0], e)) for a, e in zip(approximate, exact))
    return float(hits / (k * len(sample)))
