"""Download what one session lacks: price every request, refuse above the spend cap, land each file atomically (pure: no Dagster).

``client`` is a ``databento.Historical`` (or anything with the same ``metadata.get_cost`` and
``timeseries.get_range``); ``log`` anything with ``info`` (a ``logging.Logger``, Dagster's
``context.log``). Nothing here sees the API key: the client holds it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from spymaster_resources.raw_files import RawCatalog
from spymaster_core.config import SpymasterConfig
from spymaster_core.errors import SpymasterError
from .landing import land_file, landing_path, staging_dir, verify_dbn
from .requests import DownloadRequest, present_request_keys, session_requests


class SpendCapExceededError(SpymasterError):
    """A session's download would cost more than ``config.download_spend_cap_usd``; nothing was downloaded."""


@dataclass(frozen=True)
class DownloadReport:
    """What a session download priced and wrote.

    ``costs_usd[i]`` is Databento's ``metadata.get_cost`` of ``requests[i]`` in US dollars;
    ``present`` the :func:`~.requests.request_key` keys already covered in ``raw/`` (not requested);
    ``files`` the paths landed, in request order, and ``bytes_written`` their total size (bytes).
    ``files`` is empty for a dry run.
    """

    session_date: date
    requests: list[DownloadRequest]
    costs_usd: list[float]
    present: list[str]
    spend_cap_usd: float
    files: list[Path] = field(default_factory=list)
    bytes_written: int = 0

    @property
    def total_cost_usd(self) -> float:
        """Sum of ``costs_usd`` (US dollars)."""
        return float(sum(self.costs_usd))


def _usd(amount: float) -> str:
    return f"${amount:,.4f}"


def price_session_download(
    config: SpymasterConfig, session_date: date, client, log, catalog: RawCatalog | None = None
) -> DownloadReport:
    """Build the session's missing requests (:func:`~.requests.session_requests` minus
    :func:`~.requests.present_request_keys`) and price each with ``client.metadata.get_cost``.

    Logs each request with its cost and the total against ``config.download_spend_cap_usd``.
    Returns a report with no files. ``catalog`` defaults to a fresh ``RawCatalog(config.raw_dir)``.

    Raises:
        ValueError: ``session_date`` is not a CME session.
        RawDataError: an unreadable DBN file under ``raw/``, naming it.
    """
    catalog = catalog if catalog is not None else RawCatalog(config.raw_dir, config.spec)
    have = present_request_keys(catalog, session_date, config)
    requests = session_requests(session_date, config, have)
    costs = []
    for request in requests:
        cost = float(client.metadata.get_cost(**request.api_kwargs()))
        costs.append(cost)
        log.info(f"{session_date}: {request.describe()} costs {_usd(cost)}")
    report = DownloadReport(session_date, requests, costs, sorted(have), float(config.download_spend_cap_usd))
    log.info(
        f"{session_date}: {len(requests)} request(s) to download, {len(have)} (schema, symbol) already in raw/; "
        f"total cost {_usd(report.total_cost_usd)} (spend cap ${report.spend_cap_usd:,.2f})"
    )
    return report


def check_spend_cap(report: DownloadReport) -> None:
    """Refuse a download whose total cost exceeds its spend cap.

    Raises:
        SpendCapExceededError: ``report.total_cost_usd > report.spend_cap_usd``, naming both.
    """
    if report.total_cost_usd > report.spend_cap_usd:
        raise SpendCapExceededError(
            f"refusing to download session {report.session_date}: Databento prices its {len(report.requests)} request(s) at "
            f"{_usd(report.total_cost_usd)}, above the spend cap of ${report.spend_cap_usd:,.2f} "
            f"(config.download_spend_cap_usd); nothing was downloaded"
        )


def check_total_spend_cap(session_date: date, reports: list[DownloadReport], cap_usd: float) -> None:
    """Refuse a session whose products' downloads together cost more than ``cap_usd``.

    Raises:
        SpendCapExceededError: the summed cost of ``reports`` exceeds ``cap_usd``, naming each product's share.
    """
    total = sum(r.total_cost_usd for r in reports)
    if total > cap_usd:
        raise SpendCapExceededError(
            f"refusing to download session {session_date}: its {len(reports)} product(s) cost {_usd(total)} together, above the "
            f"total spend cap of ${cap_usd:,.2f} (config.download_total_spend_cap_usd); nothing was downloaded"
        )


def merged_report(session_date: date, reports: list[DownloadReport]) -> DownloadReport:
    """One report of several products' downloads of a session (requests, costs, present keys and files together)."""
    return DownloadReport(
        session_date,
        [q for r in reports for q in r.requests],
        [c for r in reports for c in r.costs_usd],
        [k for r in reports for k in r.present],
        sum(r.spend_cap_usd for r in reports),
        [f for r in reports for f in r.files],
        sum(r.bytes_written for r in reports),
    )


def download_session_report(
    config: SpymasterConfig,
    session_date: date,
    client,
    log,
    catalog: RawCatalog | None = None,
    dry_run: bool = False,
    priced: DownloadReport | None = None,
) -> DownloadReport:
    """Price, check the spend cap, then download and land every missing request of the session.

    Each request goes through ``client.timeseries.get_range(..., path=<staging file>)`` and
    :func:`~.landing.land_file` into :func:`~.landing.landing_path` under ``config.raw_dir`` (checked
    by :func:`~.landing.verify_dbn`). ``dry_run``: price and check only. ``priced``: the session's
    :func:`price_session_download` already made (not priced again). A failure part-way leaves
    the files already landed (complete) and nothing of the failing one; a rerun skips what landed.

    Raises:
        SpendCapExceededError: the total cost exceeds ``config.download_spend_cap_usd`` (before any download).
        RawDataError: a downloaded file is not the DBN asked for, or ``raw/`` holds an unreadable file.
        ValueError: ``session_date`` is not a CME session.
        Exception: whatever the client raises (network, authentication, unavailable data), unchanged.
    """
    report = priced if priced is not None else price_session_download(config, session_date, client, log, catalog)
    check_spend_cap(report)
    if dry_run or not report.requests:
        return report
    files: list[Path] = []
    for request in report.requests:
        final = landing_path(config.raw_dir, request, session_date)
        land_file(
            final,
            write=lambda tmp, r=request: client.timeseries.get_range(**r.api_kwargs(), path=tmp),
            staging=staging_dir(config),
            verify=lambda tmp, r=request: verify_dbn(tmp, r),
        )
        files.append(final)
        log.info(f"{session_date}: landed {final} ({final.stat().st_size:,} bytes)")
    written = sum(f.stat().st_size for f in files)
    return DownloadReport(report.session_date, report.requests, report.costs_usd, report.present, report.spend_cap_usd, files, written)


def download_session(config: SpymasterConfig, session_date: date, client, log) -> list[Path]:
    """Download the raw DBN files session ``session_date`` lacks into ``config.raw_dir``; returns the paths landed.

    See :func:`download_session_report` (same behaviour and errors); for the CLI.
    """
    return download_session_report(config, session_date, client, log).files
