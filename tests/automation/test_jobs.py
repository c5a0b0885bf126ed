"""The jobs registered by the automation module."""

import pytest
from dagster import Definitions

from spymaster_assets.automation.jobs import materialize_session_job
from spymaster_assets.partitions import trading_day_partitions
from spymaster_resources import SpymasterResource


def test_session_job_selects_every_asset_partitioned_by_trading_day():
    from spymaster_assets.definitions import all_assets

    defs = Definitions(assets=all_assets, jobs=[materialize_session_job], resources={"spymaster": SpymasterResource(home="unused")})
    job = defs.resolve_job_def("materialize_session_job")
    assert job.partitions_def == trading_day_partitions
    expected = {key for a in all_assets for key in a.keys}
    assert set(job.asset_layer.executable_asset_keys) == expected


def test_jobs_list_holds_the_session_and_download_jobs():
    pytest.importorskip("spymaster_assets.download.job")
    from spymaster_assets.automation import jobs as jobs_module

    assert [j.name for j in jobs_module.jobs] == ["materialize_session_job", "download_job"]
