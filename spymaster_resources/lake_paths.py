"""File operations on lake paths, local or on object storage (fsspec through universal_pathlib).

The lake root is a local directory (a :class:`pathlib.Path`) or an fsspec URL such as
``s3://bucket/spymaster/lake`` (a :class:`upath.UPath`; credentials and endpoint come from the
filesystem's usual environment, e.g. ``AWS_ACCESS_KEY_ID`` and ``AWS_ENDPOINT_URL`` for s3fs).
Both offer the pathlib API (``/``, ``is_file``, ``iterdir``, ``read_text``); what differs is here:

- atomic publication: locally a temporary sibling renamed over the target (POSIX rename); on object
  storage one PUT of the whole object, which readers see whole or not at all (S3's strong
  read-after-write consistency), so no rename is needed;
- directories of files (FAISS indexes, XGBoost models): locally a staging directory swapped in by
  rename; on object storage the new files are uploaded after the old ones are deleted, the marker
  file (``manifest.json``/``meta.json``) last, so a reader that checks the marker sees the old
  directory, none, or the new one;
- fingerprints: locally ``<size>-<mtime_ns>``; on object storage ``<size>-<ETag>`` (S3 times have
  one-second resolution, an ETag changes with every upload);
- listings: one recursive listing per table on object storage (a HEAD per file would cost a
  network round trip each).
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, TypeVar, Union

from upath import UPath

#: A lake path: a local path, or an fsspec path on object storage.
LakePath = Union[Path, UPath]

#: Files whose presence says a directory partition is complete (written last on object storage).
MARKER_FILES = ("manifest.json", "meta.json")

_LOCAL_PROTOCOLS = ("", "file", "local")
T = TypeVar("T")


def lake_path(location: str | os.PathLike | UPath) -> LakePath:
    """``location`` as a lake path: a :class:`Path` for a local directory (``file://`` URLs included),
    else a :class:`UPath` (``s3://``, ``gs://``, ``memory://``, ...).

    Raises ValueError naming the location when fsspec has no filesystem for its protocol (e.g.
    ``s3://`` without s3fs installed).
    """
    if isinstance(location, Path):
        return location
    if isinstance(location, UPath):
        return Path(location.path) if location.protocol in _LOCAL_PROTOCOLS else location
    text = str(location)
    if "://" not in text:
        return Path(text)
    try:
        upath = UPath(text)
    except (ImportError, ValueError) as exc:
        raise ValueError(f"lake location {text}: no filesystem for it ({exc})") from None
    return Path(upath.path) if upath.protocol in _LOCAL_PROTOCOLS else upath


def is_remote(path: LakePath) -> bool:
    """True for a path on object storage (anything that is not a local :class:`Path`)."""
    return not isinstance(path, Path)


def _info(path: UPath) -> dict:
    return path.fs.info(path.path)


def _remote_fingerprint(info: dict) -> str:
    tag = info.get("ETag") or info.get("etag") or info.get("md5Hash") or info.get("LastModified") or info.get("mtime") or info.get("created")
    return f"{info.get('size')}-{str(tag).strip(chr(34))}"


def local_file_info(st: os.stat_result) -> dict:
    """``size``, ``fingerprint`` (``<size>-<mtime_ns>``) and ``mtime`` (Unix seconds) of a local file's stat."""
    return {"size": st.st_size, "fingerprint": f"{st.st_size}-{st.st_mtime_ns}", "mtime": st.st_mtime}


def file_fingerprint(path: LakePath) -> str:
    """``<size>-<mtime_ns>`` of a local file, ``<size>-<ETag>`` of an object: changes whenever the file is rewritten.

    Raises FileNotFoundError when the file does not exist.
    """
    if not is_remote(path):
        return local_file_info(path.stat())["fingerprint"]
    return _remote_fingerprint(_info(path))


def file_identity(path: LakePath) -> tuple:
    """A key that changes whenever the file is replaced (local: inode, size, mtime; remote: size and ETag).

    Raises FileNotFoundError when the file does not exist.
    """
    if not is_remote(path):
        st = path.stat()
        return (st.st_ino, st.st_size, st.st_mtime_ns)
    return (file_fingerprint(path),)


def list_files(directory: LakePath) -> dict[str, dict]:
    """Every file under ``directory`` (recursively) by its path relative to it, with ``size``,
    ``fingerprint`` (as :func:`file_fingerprint`) and ``mtime`` (Unix seconds); ``{}`` when it does not exist.

    On object storage this is one listing (its cache is dropped first: another process may have
    written since); locally a walk with one stat per file.
    """
    out: dict[str, dict] = {}
    if not is_remote(directory):
        if not directory.is_dir():
            return {}
        for root, _, files in os.walk(directory):
            for name in files:
                full = Path(root) / name
                try:
                    st = full.stat()
                except FileNotFoundError:
                    continue
                out[full.relative_to(directory).as_posix()] = local_file_info(st)
        return out
    fs, base = directory.fs, directory.path.rstrip("/")
    fs.invalidate_cache(base)
    try:
        found = fs.find(base, detail=True)
    except FileNotFoundError:
        return {}
    for name, info in found.items():
        if info.get("type") == "directory":
            continue
        modified = info.get("LastModified") or info.get("mtime") or info.get("created")
        mtime = modified.timestamp() if hasattr(modified, "timestamp") else float(modified or 0)
        out[name[len(base) + 1:]] = {"size": info.get("size"), "fingerprint": _remote_fingerprint(info), "mtime": mtime}
    return out


def newest_mtime(directory: LakePath) -> float | None:
    """Unix time of the newest change in ``directory`` (locally the directory's own mtime, which a
    rename into it updates; remotely the newest object's time); None when it does not exist."""
    if not is_remote(directory):
        try:
            return directory.stat().st_mtime
        except FileNotFoundError:
            return None
    files = list_files(directory)
    return max((f["mtime"] for f in files.values()), default=None)


@contextmanager
def open_binary(path: LakePath) -> Iterator[BinaryIO]:
    """``path`` opened for reading bytes (a seekable file; on object storage ranged reads)."""
    with path.open("rb") as handle:
        yield handle


def parquet_source(path: LakePath) -> Path | io.BytesIO:
    """What polars reads ``path`` from: the local path, or the object's bytes in memory.

    Raises FileNotFoundError when the file does not exist.
    """
    if not is_remote(path):
        if not path.is_file():
            raise FileNotFoundError(str(path))
        return path
    return io.BytesIO(path.read_bytes())


def staging_file(final: LakePath) -> Path:
    """A new local temporary file name for building ``final``: a hidden sibling locally (so the
    rename stays on one filesystem), a file in the system temporary directory for an object."""
    name = f".{final.name}.{uuid.uuid4().hex}.tmp"
    if not is_remote(final):
        return final.parent / name
    return Path(tempfile.gettempdir()) / name


#: Called with every path published (:func:`publish_file`, :func:`replace_directory`) or removed
#: (:func:`remove_tree`) here, after the change: the lake's listing cache keeps itself current so.
CHANGE_LISTENERS: list[Callable[[LakePath], None]] = []


def _changed(path: LakePath) -> None:
    for listener in CHANGE_LISTENERS:
        listener(path)


def publish_file(staged: Path, final: LakePath) -> None:
    """Make the local file ``staged`` the file ``final``, atomically for readers; ``staged`` is gone afterwards.

    Raises OSError (e.g. ENOSPC, EACCES, or the object store's refusal) with ``staged`` removed.
    """
    try:
        if not is_remote(final):
            os.replace(staged, final)
        else:
            final.fs.put_file(str(staged), final.path)
    finally:
        if staged.exists():
            staged.unlink()
        _changed(final)


def make_parent(path: LakePath) -> None:
    """Create the directory of ``path`` (a no-op on object storage, which has no directories)."""
    if not is_remote(path):
        path.parent.mkdir(parents=True, exist_ok=True)


def write_file_atomic(path: LakePath, write: Callable[[Path], None]) -> LakePath:
    """Create ``path`` with ``write(staged)`` (which fills a local staging file) so that a reader sees
    the old file or the new, never half. Returns ``path``. Raises what ``write`` or the publication
    raises (OSError: ENOSPC, EACCES, ...), with the staging file removed and the old file whole."""
    make_parent(path)
    staged = staging_file(path)
    try:
        write(staged)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    publish_file(staged, path)
    return path


def write_text_atomic(path: LakePath, text: str) -> LakePath:
    """Write ``text`` to ``path`` so that a reader sees the old text or the new, never half (:func:`write_file_atomic`). Returns ``path``."""
    return write_file_atomic(path, lambda staged: staged.write_text(text))


def remove_tree(path: LakePath) -> None:
    """Delete ``path`` and everything under it; nothing happens when it does not exist."""
    try:
        if not is_remote(path):
            shutil.rmtree(path, ignore_errors=True)
            return
        try:
            path.fs.rm(path.path, recursive=True)
        except FileNotFoundError:
            pass
        path.fs.invalidate_cache(path.path)
    finally:
        _changed(path)


def replace_directory(final: LakePath, build: Callable[[Path], None]) -> LakePath:
    """Atomically (re)create directory ``final``: ``build(staging)`` fills a local staging directory,
    which then replaces ``final``. Returns ``final``.

    Locally the staging directory is a sibling swapped in by rename: an existing ``final`` is moved
    aside first and deleted only after the swap succeeded; if the build or the swap fails, the old
    directory is put back and the staging files are removed, so a reader sees the old directory or
    the new one, never half of either. On object storage a failed build leaves the old directory
    whole; the publication deletes the old objects (markers first) and uploads the new ones
    (:data:`MARKER_FILES` last), so a reader that checks the marker sees the old, none, or the new.
    """
    if is_remote(final):
        with tempfile.TemporaryDirectory(prefix=f".{final.name}.") as staging:
            build(Path(staging))
            try:
                _publish_directory(Path(staging), final)
            finally:
                _changed(final)
        return final
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:12]
    staging = final.parent / f".{final.name}.tmp-{tag}"
    aside = final.parent / f".{final.name}.old-{tag}"
    staging.mkdir()
    try:
        build(staging)
        if final.exists():
            os.replace(final, aside)
        try:
            os.replace(staging, final)
        except BaseException:
            if aside.exists():
                os.replace(aside, final)
            raise
        finally:
            _changed(final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(aside, ignore_errors=True)
    return final


def _publish_directory(staging: Path, final: UPath) -> None:
    """Replace the objects under ``final`` by the files of ``staging``, markers removed first and written last."""
    fs, base = final.fs, final.path.rstrip("/")
    old = list_files(final)
    for name in sorted(old, key=lambda n: n not in MARKER_FILES):
        fs.rm_file(f"{base}/{name}")
    files = sorted((p for p in staging.rglob("*") if p.is_file()), key=lambda p: p.relative_to(staging).as_posix() in MARKER_FILES)
    for path in files:
        fs.put_file(str(path), f"{base}/{path.relative_to(staging).as_posix()}")
    fs.invalidate_cache(base)


def load_directory(directory: str | os.PathLike | LakePath, marker: str, what: str, load: Callable[[Path], T]) -> T:
    """``load(root)`` on a local copy of the directory partition ``directory`` (:func:`local_directory`),
    once its ``marker`` file says it is complete.

    Raises FileNotFoundError "<what> incomplete: <marker path> does not exist" when it is not.
    """
    directory = lake_path(directory)
    if not (directory / marker).is_file():
        raise FileNotFoundError(f"{what} incomplete: {directory / marker} does not exist")
    with local_directory(directory) as root:
        return load(root)


@contextmanager
def local_directory(directory: LakePath) -> Iterator[Path]:
    """``directory`` as a local directory for libraries that read only local files (faiss.read_index,
    XGBoost's load_model): itself when local, else a temporary copy removed on exit.

    Raises FileNotFoundError when an object directory holds no file.
    """
    if not is_remote(directory):
        yield Path(directory)
        return
    files = list_files(directory)
    if not files:
        raise FileNotFoundError(str(directory))
    with tempfile.TemporaryDirectory(prefix="spymaster-lake-") as local:
        base = directory.path.rstrip("/")
        for name in files:
            target = Path(local) / name
            target.parent.mkdir(parents=True, exist_ok=True)
            directory.fs.get_file(f"{base}/{name}", str(target))
        yield Path(local)
