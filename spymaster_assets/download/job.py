"""Dagster wiring of the Databento download: one op per session partition and ``download_job``.

Register ``download_job`` and the ``databento`` resource (:class:`~spymaster_resources.databento.DatabentoResource`).
"""

import dataclasses
from typing import Optional

from dagster import Config, MetadataValue, OpExecutionContext, Out, Output, job, op

from spymaster_resources import SpymasterResource
from spymaster_resources.databento import DatabentoResource

from ..partitions import session_of_partition_key, trading_day_partitions
from ..sessions import is_trading_session
from .session import check_spend_cap, check_total_spend_cap, download_session_report, merged_report, price_session_download


class DownloadConfig(Config):
    """Run configuration of a session download; unset fields keep the SpymasterConfig defaults."""

    products: Optional[list[str]] = None  # which of the data root's products (default: every one in config.json "products")
    options: Optional[bool] = None  # also the 0DTE option roots of a product that has them, ES (config.download_options)
    order_flow_schemas: Optional[list[str]] = None  # e.g. ["trades", "mbp-10"] (config.download_order_flow_schemas)
    spend_cap_usd: Optional[float] = None  # refuse a product's session above this many USD (config.download_spend_cap_usd)
    total_spend_cap_usd: Optional[float] = None  # refuse the session's products together above this (config.download_total_spend_cap_usd)
    dry_run: bool = False  # price the requests and check the caps, download nothing


@op(out=Out(list, description="Paths of the DBN files landed under raw/ (empty when nothing was missing)."))
def download_session_files(
    context: OpExecutionContext, config: DownloadConfig, spymaster: SpymasterResource, databento: DatabentoResource
) -> Output:
    """Fetch from Databento the raw DBN files the partition's session lacks for each product, after pricing
    them against each product's spend cap and the session's total cap (nothing is downloaded when one is exceeded)."""
    session_date = session_of_partition_key(context.partition_key)
    overrides: dict[str, object] = {}
    if config.options is not None:
        overrides["download_options"] = config.options
    if config.order_flow_schemas is not None:
        overrides["download_order_flow_schemas"] = tuple(config.order_flow_schemas)
    if config.spend_cap_usd is not None:
        overrides["download_spend_cap_usd"] = float(config.spend_cap_usd)
    if config.total_spend_cap_usd is not None:
        overrides["download_total_spend_cap_usd"] = float(config.total_spend_cap_usd)
    base = dataclasses.replace(spymaster.config, **overrides) if overrides else spymaster.config
    products = [base.serving(p).product for p in config.products] if config.products else list(base.products)
    trading = [p for p in products if is_trading_session(session_date, base.for_product(p))]
    client = databento.client(data_root=base.home)
    # Every product is priced first: the total cap is checked before anything lands.
    priced = {p: price_session_download(base.for_product(p), session_date, client, context.log, spymaster.for_product(p).catalog) for p in trading}
    for report in priced.values():
        check_spend_cap(report)
    check_total_spend_cap(session_date, list(priced.values()), base.download_total_spend_cap_usd)
    reports = {
        p: download_session_report(base.for_product(p), session_date, client, context.log, catalog=spymaster.for_product(p).catalog, dry_run=config.dry_run, priced=priced[p])
        for p in trading
    }
    if not reports:
        raise ValueError(f"{session_date} is a session of none of {', '.join(products)}: nothing to download")
    return Output([str(f) for r in reports.values() for f in r.files], metadata=_metadata(session_date, config.dry_run, reports, base, products))


def _metadata(session_date, dry_run: bool, reports: dict, settings, products: list[str]) -> dict:
    """The download's metadata: per product its requests and costs, and the totals."""
    report = merged_report(session_date, list(reports.values()))
    metadata = {
        "session": MetadataValue.text(session_date.isoformat()),
        "dry_run": MetadataValue.bool(dry_run),
        "products": MetadataValue.text(", ".join(reports) + (f" (no session today: {', '.join(p for p in products if p not in reports)})" if len(reports) < len(products) else "")),
        **{f"cost_usd/{p}": MetadataValue.float(r.total_cost_usd) for p, r in reports.items()},
        "total_spend_cap_usd": MetadataValue.float(settings.download_total_spend_cap_usd),
        "requests": MetadataValue.int(len(report.requests)),
        "requested": MetadataValue.md(
            "\n".join(f"- `{r.describe()}`: ${c:,.4f}" for r, c in zip(report.requests, report.costs_usd)) or "nothing missing"
        ),
        "already_present": MetadataValue.text(", ".join(report.present) or "none"),
        "cost_usd": MetadataValue.float(report.total_cost_usd),
        "spend_cap_usd": MetadataValue.float(report.spend_cap_usd),
        "files_written": MetadataValue.int(len(report.files)),
        "files": MetadataValue.md("\n".join(f"- `{p}`" for p in report.files) or "none"),
        "bytes_written": MetadataValue.int(report.bytes_written),
        **{f"config/{k}": MetadataValue.text(v) for k, v in settings.field_strings().items() if k.startswith("download_")},
    }
    return metadata


@job(partitions_def=trading_day_partitions, description="Download from Databento the raw DBN files a session lacks (priced first, capped).")
def download_job():
    download_session_files()
