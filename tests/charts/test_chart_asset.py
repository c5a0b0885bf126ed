"""The session_chart asset on the materialized sample: PNG under reports/, decodable, sized, and in the metadata."""

from __future__ import annotations

import base64
import shutil
import warnings
from datetime import date
from pathlib import Path

import matplotlib.image as mpimg
import pytest
from dagster import DagsterInstance, materialize

from spymaster_assets.charts.assets import chart_assets, session_chart
from spymaster_assets.charts.session_chart import FIGURE_DPI, FIGURE_SIZE_INCHES
from spymaster_resources import SpymasterResource
from spymaster_resources.lake import Lake

pytestmark = pytest.mark.filterwarnings("ignore")

DAY = date(2013, 10, 10)
EXPECTED_SHAPE = (int(FIGURE_SIZE_INCHES[1] * FIGURE_DPI), int(FIGURE_SIZE_INCHES[0] * FIGURE_DPI), 4)  # rows, columns, RGBA


def _materialize_chart(home: Path, day: date):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = materialize(chart_assets, partition_key=day.isoformat(), instance=DagsterInstance.ephemeral(), resources={"spymaster": SpymasterResource(home=str(home))})
    assert result.success
    (event,) = result.asset_materializations_for_node("session_chart")
    return event.metadata


def test_asset_is_in_the_reports_group_with_its_upstreams():
    spec = session_chart.specs_by_key[session_chart.key]
    assert spec.group_name == "reports"
    assert {dep.asset_key.to_user_string() for dep in spec.deps} == {"silver_bars", "silver_levels", "gold_episodes", "gold_signals"}
    assert session_chart.partitions_def is not None


def test_chart_of_a_materialized_session(materialized_home):
    metadata = _materialize_chart(materialized_home, DAY)
    path = materialized_home / "reports" / f"session_{DAY.isoformat()}.png"
    assert path.is_file()
    assert mpimg.imread(path).shape == EXPECTED_SHAPE
    assert metadata["path"].value == str(path)
    markdown = metadata["chart"].value
    prefix = "data:image/png;base64,"
    assert markdown.startswith("![") and prefix in markdown
    encoded = markdown.split(prefix, 1)[1].rstrip(")")
    assert base64.b64decode(encoded) == path.read_bytes()
    episodes = Lake(materialized_home / "lake").read("gold", "gold_episodes", DAY)
    assert metadata["episodes"].value == episodes.height > 0
    assert sum(v.value for k, v in metadata.items() if k.startswith("outcomes/")) == episodes.height


def test_chart_of_a_session_without_episodes(materialized_home, tmp_path):
    """A quiet session (no level ever in the approach zone) still gets a chart."""
    home = tmp_path / "quiet"
    source, target = Lake(materialized_home / "lake"), Lake(home / "lake")
    day = DAY
    for tier, table in (("silver", "silver_bars"), ("silver", "silver_levels")):
        shutil.copytree(source.partition_dir(tier, table, day), target.partition_dir(tier, table, day))
    for table in ("gold_episodes", "gold_signals"):
        target.write("gold", table, day, source.read("gold", table, day).clear())
    metadata = _materialize_chart(home, DAY)
    assert metadata["episodes"].value == 0 and metadata["approaches"].value == 0
    assert mpimg.imread(home / "reports" / f"session_{DAY.isoformat()}.png").shape == EXPECTED_SHAPE
