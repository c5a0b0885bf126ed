"""The live market data connection of the trader's screen: Databento's Live API behind a small interface.

:class:`LiveClient` is what the screen needs of ``databento.Live``: subscribe, iterate records,
stop. :func:`databento_live_client` opens the real one (the key from ``DATABENTO_API_KEY`` or a
``.env`` file, as for downloads; never logged); tests pass a client that replays DBN records, since
no test can reach Databento. Records are ``databento_dbn`` messages: ``OHLCVMsg`` (ts_event in ns
UTC, prices fixed-point 1e-9 points, volume in contracts), ``SymbolMappingMsg``, ``ErrorMsg``,
``SystemMsg`` (Databento DBN encoding spec).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Protocol

from .databento import find_api_key

class LiveClient(Protocol):
    """The part of ``databento.Live`` the screen uses."""

    def subscribe(self, dataset: str, schema: str, symbols: str, stype_in: str, start: datetime | None = None) -> object:
        """Ask for ``schema`` records of ``symbols`` (from ``start``, an intraday replay, when given)."""

    def __iter__(self) -> Iterator[object]:
        """The records, as they arrive; ends or raises when the connection is lost."""

    def stop(self) -> None:
        """Close the connection."""


def databento_live_client(search_dirs: list[Path]) -> LiveClient:
    """A ``databento.Live`` client with the API key of ``DATABENTO_API_KEY`` or a ``.env`` in ``search_dirs``.

    Raises:
        MissingApiKeyError: no key in the environment or those ``.env`` files.
    """
    import databento as db

    return db.Live(key=find_api_key(search_dirs))
