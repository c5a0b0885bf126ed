"""Land downloaded DBN files in ``raw/`` atomically (pure: no Dagster).

A download is written to a staging file OUTSIDE ``raw/`` (``<home>/.staging/download/``), checked
(its DBN header names the requested dataset and schema; a file small enough is fully decoded, which
catches a truncated stream), flushed to disk, then renamed to its final name. A reader of ``raw/``
(the bronze assets, the raw-file sensor) therefore sees either no file or the whole file, and a
failed download leaves nothing behind.

Layout: ``raw/<dataset>/<schema>/<dataset-slug>-<YYYYMMDD>-<symbols-slug>.<schema>.dbn.zst``, e.g.
``raw/GLBX.MDP3/ohlcv-1m/glbx-mdp3-20240110-es-fut.ohlcv-1m.dbn.zst`` (Databento's own batch file
names are ``glbx-mdp3-YYYYMMDD.<schema>.dbn.zst``; the symbols slug keeps futures and options of
one schema apart). The date is the session's trade date. Bronze never relies on the name.
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
import warnings
from collections.abc import Callable
from datetime import date
from pathlib import Path

from spymaster_resources.raw_files import SCAN_RECORDS_MAX_BYTES, _store, iter_records
from spymaster_core.config import SpymasterConfig
from spymaster_core.errors import RawDataError
from .requests import DownloadRequest


def staging_dir(config: SpymasterConfig) -> Path:
    """Where downloads are written before they are renamed into ``raw/``: ``<home>/.staging/download``."""
    return Path(config.home) / ".staging" / "download"


def landing_path(raw_dir: Path, request: DownloadRequest, session_date: date) -> Path:
    """Final path of ``request``'s file for ``session_date`` under ``raw_dir`` (layout in the module docstring)."""
    dataset_slug = request.dataset.lower().replace(".", "-")
    name = f"{dataset_slug}-{session_date:%Y%m%d}-{request.slug}.{request.schema}.dbn.zst"
    return Path(raw_dir) / request.dataset / request.schema / name


def verify_dbn(path: Path, request: DownloadRequest, decode_max_bytes: int = SCAN_RECORDS_MAX_BYTES) -> None:
    """Check that ``path`` is the DBN file ``request`` asked for.

    Its header must name ``request.dataset`` and ``request.schema``; a file of at most
    ``decode_max_bytes`` is decoded to the end (a truncated or corrupt stream raises). Larger files
    (full depth, GBs) are not decoded a second time here; bronze reports their truncation.

    Raises:
        RawDataError: unreadable, truncated, or another dataset/schema, naming the file.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        store = _store(path)
    dataset, schema = str(store.dataset), str(store.schema)
    if dataset != request.dataset or schema != request.schema:
        raise RawDataError(f"{path}: downloaded file holds {dataset} {schema}, expected {request.dataset} {request.schema}")
    if path.stat().st_size <= decode_max_bytes:
        for _ in iter_records(path):
            pass


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def land_file(final: Path, write: Callable[[Path], None], staging: Path, verify: Callable[[Path], None] | None = None) -> Path:
    """Write a file through ``write(tmp_path)`` into ``staging``, ``verify(tmp_path)``, then rename it to ``final``.

    ``final``'s directory is created. An existing ``final`` is replaced in one rename, so readers see
    the old or the new file, never a mix. When ``staging`` and ``final`` are on different file
    systems (rename fails with EXDEV) the file is copied to a hidden temporary name beside ``final``
    (not ending in ``.dbn``/``.dbn.zst``, so no reader of ``raw/`` picks it up) and renamed from there.
    Whatever fails (``write``, ``verify``, the rename), no temporary file is left and ``final`` is
    untouched. Returns ``final``.

    Raises:
        RawDataError: ``write`` produced no file. Whatever ``write`` or ``verify`` raise, unchanged.
    """
    staging.mkdir(parents=True, exist_ok=True)
    final.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    tmp = staging / f"{final.name}.{token}.part"
    beside = final.parent / f".{final.name}.{token}.part"
    try:
        write(tmp)
        if not tmp.is_file():
            raise RawDataError(f"{final}: the download wrote no file")
        if verify is not None:
            verify(tmp)
        _fsync(tmp)
        try:
            os.replace(tmp, final)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            shutil.copyfile(tmp, beside)
            _fsync(beside)
            os.replace(beside, final)
    finally:
        for leftover in (tmp, beside):
            if leftover.exists():
                leftover.unlink()
    return final
