"""Jobs Spymaster runs every trading day: materialize a session's assets, download a session's raw files.

``materialize_session_job`` selects every ES asset (bronze -> silver -> gold, their checks and the
per-session charts) for one trading-day partition (another product P has
``materialize_session_job_<p>``, built by ``spymaster_assets.product_graph``); the ``raw_files_sensor`` requests it when DBN
files land in ``raw/``, and a backfill of many sessions launches it per partition, from the UI
(Jobs -> materialize_session_job -> Partitions -> Launch backfill) or the CLI::

    dagster job backfill -m spymaster_assets.definitions -j materialize_session_job \
        --from 2013-10-07 --to 2013-10-11 --noprompt

(a backfill is executed by the daemon: ``dagster dev`` runs one). The DuckDB catalog (group
"catalog") is left out: it is one unpartitioned file of views, rebuilt by ``duckdb_catalog_job``; so is
the tuning (group "tuning", ``tune_job``), which is run by hand.
"""

from dagster import AssetSelection, define_asset_job, in_process_executor

from ..download.job import download_job

# Partitioned by trading_day_partitions, which every partitioned asset shares: Dagster 1.13 infers it
# from the selection (passing partitions_def is deprecated, removed in 2.0).
materialize_session_job = define_asset_job(
    "materialize_session_job",
    # ES's tier groups; every other product has its own job (spymaster_assets.product_graph).
    selection=AssetSelection.groups("bronze", "silver", "gold", "reports"),
    # One process per session run: the steps of a session are a chain, and a process per step costs
    # seconds of Python start-up each on a small machine (the CLI backfill runs in process too).
    executor_def=in_process_executor,
    description="Materialize every Spymaster asset (bronze, silver, gold, checks, charts) of one trading session.",
)


jobs = [materialize_session_job, download_job]
