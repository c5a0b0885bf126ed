"""Dagster wiring of the Databento download: one op per session partition and ``download_job``.

Register ``download_job`` and the ``databento`` resource (:class:`~spymaster_resources.databento.DatabentoResource`).
"""

import dataclasses
from typing import Optional

from dagster import Config, MetadataValue, OpExecutionContext, Out, Output, job, op

from spymaster_resources import SpymasterResource
from spymaster_resources.databento import DatabentoResource

from ..partitions import session_of_partition_key, trading_day_partitions
from .session import download_session_report


class DownloadConfig(Config):
    """Run configuration of a session download; unset fields keep the SpymasterConfig defaults."""

    options: Optional[bool] = None  # also the ES 0DTE option roots (config.download_options)
    order_flow_schemas: Optional[list[str]] = None  # e.g. ["trades", "mbp-10"] (config.download_order_flow_schemas)
    spend_cap_usd: Optional[float] = None  # refuse above this many USD (config.download_spend_cap_usd)
    dry_run: bool = False  # price the requests and check the cap, download nothing


@op(out=Out(list, description="Paths of the DBN files landed under raw/ (empty when nothing was missing)."))
def download_session_files(
    context: OpExecutionContext, config: DownloadConfig, spymaster: SpymasterResource, databento: DatabentoResource
) -> Output:
    """Fetch from Databento the raw DBN files the partition's session lacks, after pricing them against the spend cap."""
    session_date = session_of_partition_key(context.partition_key)
    overrides: dict[str, object] = {}
    if config.options is not None:
        overrides["download_options"] = config.options
    if config.order_flow_schemas is not None:
        overrides["download_order_flow_schemas"] = tuple(config.order_flow_schemas)
    if config.spend_cap_usd is not None:
        overrides["download_spend_cap_usd"] = float(config.spend_cap_usd)
    settings = spymaster.config
    if overrides:
        settings = dataclasses.replace(settings, **overrides)
    client = databento.client(data_root=settings.home)
    report = download_session_report(settings, session_date, client, context.log, catalog=spymaster.catalog, dry_run=config.dry_run)
    metadata = {
        "session": MetadataValue.text(session_date.isoformat()),
        "dry_run": MetadataValue.bool(config.dry_run),
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
        **{k: MetadataValue.text(v) for k, v in settings.as_metadata().items() if k.startswith("config/download_")},
    }
    return Output([str(p) for p in report.files], metadata=metadata)


@job(partitions_def=trading_day_partitions, description="Download from Databento the raw DBN files a session lacks (priced first, capped).")
def download_job():
    download_session_files()
