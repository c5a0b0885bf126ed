"""Tuned parameter files: point-in-time choice, versions, and clear errors for bad files."""

from __future__ import annotations

import json
from datetime import date

import pytest

from spymaster_core.config import SpymasterConfig
from spymaster_core.errors import SpymasterError
from spymaster_core.tuned_params import config_for_day, read_params, write_params


def test_the_newest_file_tuned_before_the_day_serves_it(tmp_path):
    config = SpymasterConfig(home=tmp_path)
    first = write_params(config, {"top_k": 20}, date(2024, 1, 10), {})
    second = write_params(config, {"top_k": 30, "similarity_block_weights": [["distance", 2.0]]}, date(2024, 2, 10), {})
    assert (first.name, second.name) == ("tuned-v1.json", "tuned-v2.json")
    assert config_for_day(config, date(2024, 1, 10)) == (config, None)  # its own last session: defaults
    served, chosen = config_for_day(config, date(2024, 1, 11))
    assert served.top_k == 20 and chosen.version == 1
    served, chosen = config_for_day(config, date(2024, 3, 1))
    assert served.top_k == 30 and served.similarity_block_weights == (("distance", 2.0),) and chosen.version == 2


def test_bad_files_are_named(tmp_path):
    config = SpymasterConfig(home=tmp_path)
    with pytest.raises(SpymasterError, match="not tunable"):
        write_params(config, {"horizon_minutes": 30}, date(2024, 1, 10), {})
    folder = tmp_path / "params"
    folder.mkdir(exist_ok=True)
    bad = folder / "tuned-v1.json"
    bad.write_text("{")
    with pytest.raises(SpymasterError, match="tuned-v1.json"):
        config_for_day(config, date(2024, 1, 11))
    bad.write_text(json.dumps({"format": "spymaster-tuned-1", "tuned_through": "2024-01-01", "values": {"break_atr": 2.0}}))
    with pytest.raises(SpymasterError, match="cannot be tuned"):
        read_params(bad)


def test_data_root_config_file(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_min_sessions": 3, "similarity_block_weights": [["context", 0.5]]}))
    config = SpymasterConfig.for_home(tmp_path)
    assert config.model_min_sessions == 3 and config.similarity_block_weights == (("context", 0.5),)
    (tmp_path / "config.json").write_text(json.dumps({"no_such_field": 1}))
    with pytest.raises(ValueError, match="no_such_field"):
        SpymasterConfig.for_home(tmp_path)
