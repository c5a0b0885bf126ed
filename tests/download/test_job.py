"""The Dagster download job and the Databento resource: fake client, spend cap, missing key, and the key never leaking."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Optional

import pytest
from dagster import DagsterInstance

from spymaster_assets.download.job import download_job
from spymaster_resources import SpymasterResource
from spymaster_resources.databento import DatabentoResource, MissingApiKeyError, find_api_key, read_dotenv_value

from .fake_databento import FakeHistorical

FAKE_KEY = "db-SeCrEtFaKeKeY0123456789abcdefXYZ"
#: The fake client each test hands the job (a resource is a frozen pydantic model: no arbitrary attributes).
CLIENTS: dict[str, FakeHistorical] = {}


class FakeDatabento(DatabentoResource):
    """The real key lookup and a real ``databento.Historical`` (holding the key), wrapped by the fake that answers."""

    case: str = "default"

    def client(self, data_root: Optional[Path] = None):
        fake = CLIENTS[self.case]
        fake.real_client = super().client(data_root)
        return fake


@pytest.fixture
def no_key_anywhere(tmp_path, monkeypatch):
    monkeypatch.delenv("DATABENTO_API_KEY", raising=False)
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    return workdir


def run(home: Path, databento: DatabentoResource, partition: str = "2024-01-10", run_config: dict | None = None):
    instance = DagsterInstance.ephemeral()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = download_job.execute_in_process(
            partition_key=partition,
            resources={"spymaster": SpymasterResource(home=str(home)), "databento": databento},
            run_config=run_config,
            instance=instance,
            raise_on_error=False,
        )
    logs = [record for record in instance.all_logs(result.run_id)]
    return result, logs


def event_text(logs) -> str:
    """Every event's message, error and metadata as text."""
    parts = []
    for record in logs:
        parts.append(record.user_message or "")
        if record.dagster_event is not None:
            parts.append(repr(record.dagster_event))
    return "\n".join(parts)


def test_job_downloads_the_partition_with_a_fake_client(tmp_path, no_key_anywhere, monkeypatch, capsys):
    monkeypatch.setenv("DATABENTO_API_KEY", FAKE_KEY)
    CLIENTS["ok"] = fake = FakeHistorical(cost_by_schema={"definition": 0.1, "ohlcv-1m": 0.2})
    result, logs = run(tmp_path, FakeDatabento(case="ok", home=str(tmp_path)))
    assert result.success
    landed = result.output_for_node("download_session_files")
    raw = tmp_path / "raw" / "GLBX.MDP3"
    assert landed == [str(raw / "definition" / "glbx-mdp3-20240110-es-fut.definition.dbn.zst"), str(raw / "ohlcv-1m" / "glbx-mdp3-20240110-es-fut.ohlcv-1m.dbn.zst")]
    assert fake.real_client._key == FAKE_KEY  # the real client got the key from the environment
    (output,) = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = {k: v.value for k, v in output.step_output_data.metadata.items()}
    assert metadata["files_written"] == 2
    assert metadata["bytes_written"] == sum(Path(p).stat().st_size for p in landed)
    assert metadata["cost_usd"] == pytest.approx(0.3)
    assert metadata["spend_cap_usd"] == 5.0
    # The key appears in no log, event, metadata or printed output.
    text = event_text(logs) + json.dumps({k: str(v) for k, v in metadata.items()})
    captured = capsys.readouterr()
    assert FAKE_KEY not in text + captured.out + captured.err
    assert "total cost $0.3000" in text


def test_job_refuses_above_the_spend_cap(tmp_path, no_key_anywhere, monkeypatch):
    monkeypatch.setenv("DATABENTO_API_KEY", FAKE_KEY)
    CLIENTS["dear"] = fake = FakeHistorical(cost_by_schema={"definition": 0.5, "ohlcv-1m": 0.75})
    result, logs = run(tmp_path, FakeDatabento(case="dear"), run_config={"ops": {"download_session_files": {"config": {"spend_cap_usd": 1.0}}}})
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = failure.step_failure_data.error.to_string()
    assert "SpendCapExceededError" in message and "$1.2500" in message and "spend cap of $1.00" in message
    assert fake.range_calls == []
    assert not (tmp_path / "raw").exists() or not any(p.is_file() for p in (tmp_path / "raw").rglob("*"))
    assert FAKE_KEY not in event_text(logs)


def test_job_without_a_key_says_so(tmp_path, no_key_anywhere):
    result, logs = run(tmp_path, DatabentoResource(home=str(tmp_path)))
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "DATABENTO_API_KEY is not set (put it in the environment or a .env file)" in failure.step_failure_data.error.to_string()


def test_run_config_turns_options_on(tmp_path, no_key_anywhere, monkeypatch):
    monkeypatch.setenv("DATABENTO_API_KEY", FAKE_KEY)
    CLIENTS["options"] = fake = FakeHistorical()
    result, _ = run(tmp_path, FakeDatabento(case="options"), run_config={"ops": {"download_session_files": {"config": {"options": True, "dry_run": True}}}})
    assert result.success
    assert [c["schema"] for c in fake.cost_calls] == ["definition", "ohlcv-1m", "definition", "statistics", "bbo-1m", "trades"]
    assert fake.range_calls == [] and result.output_for_node("download_session_files") == []


def test_key_from_dotenv_files(tmp_path, no_key_anywhere):
    home = tmp_path / "home"
    home.mkdir()
    with pytest.raises(MissingApiKeyError) as missing:
        DatabentoResource(home=str(home)).client()
    assert str(missing.value) == "DATABENTO_API_KEY is not set (put it in the environment or a .env file)"
    assert not DatabentoResource(home=str(home)).has_api_key()
    # In the data root, quoted, with export and comments around it.
    (home / ".env").write_text(f"# databento\nOTHER=1\nexport DATABENTO_API_KEY=\"{FAKE_KEY}\"\n")
    assert DatabentoResource(home=str(home)).client()._key == FAKE_KEY
    # The working directory's .env comes first, the environment before both.
    (no_key_anywhere / ".env").write_text("DATABENTO_API_KEY=db-from-cwd  # comment\n")
    assert DatabentoResource(home=str(home)).client()._key == "db-from-cwd"
    assert find_api_key([no_key_anywhere, home], environ={"DATABENTO_API_KEY": "db-from-env"}) == "db-from-env"


def test_dotenv_reader(tmp_path):
    env = tmp_path / ".env"
    env.write_text("A=1\nDATABENTO_API_KEY=\n")
    assert read_dotenv_value(env, "DATABENTO_API_KEY") is None  # empty counts as unset
    env.write_text("DATABENTO_API_KEY='db-single'\n")
    assert read_dotenv_value(env, "DATABENTO_API_KEY") == "db-single"
    assert read_dotenv_value(tmp_path / "absent.env", "DATABENTO_API_KEY") is None


def test_the_key_is_not_a_resource_field(tmp_path, no_key_anywhere, monkeypatch):
    monkeypatch.setenv("DATABENTO_API_KEY", FAKE_KEY)
    resource = DatabentoResource(home=str(tmp_path))
    client = resource.client()
    assert FAKE_KEY not in repr(resource) + str(resource.model_dump()) + repr(client)


def test_each_configured_product_is_downloaded_in_its_own_symbology_under_one_total_cap(tmp_path, no_key_anywhere, monkeypatch):
    monkeypatch.setenv("DATABENTO_API_KEY", FAKE_KEY)
    (tmp_path / "config.json").write_text(json.dumps({"products": ["ES", "NQ", "SPY"]}))
    CLIENTS["three"] = fake = FakeHistorical(cost_by_schema={"definition": 0.1, "ohlcv-1m": 0.2})
    result, _ = run(tmp_path, FakeDatabento(case="three"))
    assert result.success
    calls = {(c["dataset"], tuple(c["symbols"]), c["stype_in"], c["schema"]) for c in fake.range_calls}
    assert calls == {
        ("GLBX.MDP3", ("ES.FUT",), "parent", "definition"), ("GLBX.MDP3", ("ES.FUT",), "parent", "ohlcv-1m"),
        ("GLBX.MDP3", ("NQ.FUT",), "parent", "definition"), ("GLBX.MDP3", ("NQ.FUT",), "parent", "ohlcv-1m"),
        ("XNAS.ITCH", ("SPY",), "raw_symbol", "definition"), ("XNAS.ITCH", ("SPY",), "raw_symbol", "ohlcv-1m"),
    }
    names = sorted(Path(p).name for p in result.output_for_node("download_session_files"))
    assert "glbx-mdp3-20240110-nq-fut.ohlcv-1m.dbn.zst" in names and "xnas-itch-20240110-spy.ohlcv-1m.dbn.zst" in names
    # Priced once each (no request twice), and a session costing more than the total cap lands nothing.
    assert len(fake.cost_calls) == 6
    CLIENTS["capped"] = capped = FakeHistorical(cost_by_schema={"definition": 0.1, "ohlcv-1m": 0.2})
    (tmp_path / "second").mkdir()
    (tmp_path / "second" / "config.json").write_text(json.dumps({"products": ["ES", "NQ", "SPY"]}))
    result, _ = run(tmp_path / "second", FakeDatabento(case="capped"), partition="2024-01-11",
                    run_config={"ops": {"download_session_files": {"config": {"products": ["ES", "NQ"], "total_spend_cap_usd": 0.5}}}})
    assert not result.success and capped.range_calls == []
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "2 product(s) cost $0.6000 together, above the total spend cap of $0.50" in failure.step_failure_data.error.to_string()
