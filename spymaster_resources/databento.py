"""Dagster resource giving ops a Databento historical client, with the API key read from the environment or a .env file.

The key is looked up in ``DATABENTO_API_KEY``, then in a ``.env`` file in the working directory,
then in one in the data root. It is held only by the ``databento.Historical`` client: it is not a
resource field (so it never shows in the Dagster UI or run config) and is never logged, printed,
put in metadata or written anywhere.
"""

import os
from pathlib import Path
from typing import Optional

from dagster import ConfigurableResource

from spymaster_core.errors import SpymasterError

from .resources import default_home

API_KEY_VARIABLE = "DATABENTO_API_KEY"
MISSING_KEY_MESSAGE = f"{API_KEY_VARIABLE} is not set (put it in the environment or a .env file)"


class MissingApiKeyError(SpymasterError):
    """No Databento API key in the environment or a .env file."""


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    # An unquoted value ends at a " #" comment (dotenv convention).
    return value.split(" #", 1)[0].strip()


def read_dotenv_value(path: Path, name: str) -> Optional[str]:
    """The value of ``name`` in the dotenv file ``path`` (``NAME=value``, optional ``export``, quotes, ``#`` comments).

    Returns None when the file or the variable is missing or the value is empty.
    """
    if not path.is_file():
        return None
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        key = key.strip()
        if key.startswith("export "):
            key = key[len("export "):].strip()
        if key == name:
            return _unquote(value) or None
    return None


def find_api_key(search_dirs: list[Path], environ: Optional[dict] = None) -> str:
    """The Databento API key: ``DATABENTO_API_KEY`` from ``environ`` (default ``os.environ``), else the
    first ``.env`` in ``search_dirs`` that sets it.

    Raises:
        MissingApiKeyError: no key anywhere (the message says where to put it, never a key).
    """
    env = os.environ if environ is None else environ
    key = (env.get(API_KEY_VARIABLE) or "").strip()
    if key:
        return key
    for directory in search_dirs:
        key = read_dotenv_value(Path(directory) / ".env", API_KEY_VARIABLE)
        if key:
            return key
    raise MissingApiKeyError(MISSING_KEY_MESSAGE)


class DatabentoResource(ConfigurableResource):
    """Databento historical API access (resource key ``databento``).

    The API key comes from ``DATABENTO_API_KEY`` or a ``.env`` file in the working directory or in
    ``home`` (the data root; default ``SPYMASTER_HOME`` or ``data``); it is never a field, logged or stored.
    """

    home: str = ""

    def search_dirs(self, data_root: Optional[Path] = None) -> list[Path]:
        """Directories whose ``.env`` may hold the key: the working directory, ``data_root``, then ``home``."""
        dirs = [Path.cwd()]
        if data_root is not None:
            dirs.append(Path(data_root))
        dirs.append(Path(self.home or default_home()))
        return list(dict.fromkeys(d.resolve() for d in dirs))

    def has_api_key(self, data_root: Optional[Path] = None) -> bool:
        """True when a key is available (for sensors and schedules deciding whether to download)."""
        try:
            find_api_key(self.search_dirs(data_root))
        except MissingApiKeyError:
            return False
        return True

    def client(self, data_root: Optional[Path] = None):
        """A ``databento.Historical`` client holding the key.

        ``data_root``: another directory whose ``.env`` may hold the key (the Spymaster data root).

        Raises:
            MissingApiKeyError: "DATABENTO_API_KEY is not set (put it in the environment or a .env file)".
        """
        import databento as db  # imported on use: loading the Dagster definitions does not need it

        return db.Historical(key=find_api_key(self.search_dirs(data_root)))
