"""The tuning asset run by Dagster: a parameter file, the studies' history and importances in the metadata."""

from __future__ import annotations

import json

from dagster import DagsterInstance, materialize

from spymaster_assets.tuning.assets import tuned_params
from spymaster_resources import SpymasterResource


def test_tune_job_asset_writes_the_file_and_shows_the_study(materialized_home, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "lake").symlink_to(materialized_home / "lake")
    (home / "config.json").write_text((materialized_home / "config.json").read_text())
    result = materialize(
        [tuned_params],
        instance=DagsterInstance.ephemeral(),
        resources={"spymaster": SpymasterResource(home=str(home))},
        run_config={"ops": {"tuned_params": {"config": {"trials": 2, "through": "2013-10-11", "stage": 1}}}},
    )
    assert result.success
    metadata = result.asset_materializations_for_node("tuned_params")[0].metadata
    assert metadata["stage1/trials"].value == 2
    assert "data:image/png;base64," in metadata["stage1/history"].value
    assert "parameter" in metadata["stage1/importances"].value
    written = json.loads((home / "params" / "tuned-v1.json").read_text())
    assert written["tuned_through"] == "2013-10-11" and "top_k" in written["values"]
    assert (home / "params" / "optuna.db").is_file()
