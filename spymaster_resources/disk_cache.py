"""Small derived values kept on disk between processes, so a short-lived command does not recompute them.

Each value is JSON, named by what it is and a key holding everything it depends on (library
versions, the day it was computed for): a different key is a different file, so a stale value is
never read. The directory is ``$SPYMASTER_CACHE_DIR``, else the user cache directory
(``platformdirs.user_cache_dir("spymaster")``, e.g. ``~/.cache/spymaster``). It is only a cache:
an unreadable, unwritable or missing directory costs the computation, never an error.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Callable

from .lake_paths import write_text_atomic

#: Files of a name not used for this long (seconds) are removed when that name is written again.
STALE_AFTER_SECONDS = 7 * 24 * 3600


def cache_dir() -> Path:
    """``$SPYMASTER_CACHE_DIR`` when set, else the user cache directory of spymaster."""
    override = os.environ.get("SPYMASTER_CACHE_DIR")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_cache_dir("spymaster"))


def cached_json(name: str, key: dict[str, Any], compute: Callable[[], Any]) -> Any:
    """The JSON value ``compute()`` returns for ``key`` (JSON-able), read from the cache when an earlier
    process stored it, else computed and stored (temporary file, then rename). Exceptions of
    ``compute`` propagate and nothing is stored."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    directory = cache_dir()
    path = directory / f"{name}-{digest}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        pass
    value = compute()
    try:
        write_text_atomic(path, json.dumps(value))
        _remove_stale(directory, name, keep=path)
    except OSError:
        pass
    return value


def _remove_stale(directory: Path, name: str, keep: Path) -> None:
    now = time.time()
    for other in directory.glob(f"{name}-*.json"):
        try:
            if other != keep and now - other.stat().st_mtime > STALE_AFTER_SECONDS:
                other.unlink()
        except OSError:
            continue
