"""Session download: priced first, refused above the spend cap, landed in the raw layout, nothing fetched twice."""

from __future__ import annotations

import dataclasses
import logging
from datetime import date
from pathlib import Path

import pytest

from spymaster_resources.raw_files import RawCatalog
from spymaster_core.config import SpymasterConfig
from spymaster_assets.download.requests import ES_0DTE_OPTION_PARENTS
from spymaster_assets.download.session import SpendCapExceededError, download_session, download_session_report

from .fake_databento import FakeHistorical

SESSION = date(2024, 1, 10)
LOG = logging.getLogger("test-download")


def dbn_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_download_lands_every_missing_file_then_nothing(tmp_path):
    config = SpymasterConfig(home=tmp_path, download_options=True)
    client = FakeHistorical(cost_by_schema={"definition": 0.01, "ohlcv-1m": 0.02, "statistics": 0.03, "bbo-1m": 0.5, "trades": 1.0})
    files = download_session(config, SESSION, client, LOG)
    raw = tmp_path / "raw" / "GLBX.MDP3"
    expected = [
        raw / "definition" / "glbx-mdp3-20240110-es-fut.definition.dbn.zst",
        raw / "ohlcv-1m" / "glbx-mdp3-20240110-es-fut.ohlcv-1m.dbn.zst",
        raw / "definition" / "glbx-mdp3-20240110-es-0dte-opt.definition.dbn.zst",
        raw / "statistics" / "glbx-mdp3-20240110-es-0dte-opt.statistics.dbn.zst",
        raw / "bbo-1m" / "glbx-mdp3-20240110-es-0dte-opt.bbo-1m.dbn.zst",
        raw / "trades" / "glbx-mdp3-20240110-es-0dte-opt.trades.dbn.zst",
    ]
    assert files == expected
    assert dbn_files(tmp_path / "raw") == sorted(expected)
    assert dbn_files(tmp_path / ".staging") == []
    # Every request was priced with exactly the arguments it was downloaded with.
    assert client.cost_calls == client.range_calls
    assert [c["schema"] for c in client.range_calls] == ["definition", "ohlcv-1m", "definition", "statistics", "bbo-1m", "trades"]
    assert client.range_calls[-1]["symbols"] == list(ES_0DTE_OPTION_PARENTS)

    # The landed headers cover the session: a second run prices and downloads nothing.
    again = FakeHistorical()
    report = download_session_report(config, SESSION, again, LOG, catalog=RawCatalog(config.raw_dir))
    assert report.requests == [] and report.files == [] and again.cost_calls == [] and again.range_calls == []
    assert len(report.present) == 2 + 4 * len(ES_0DTE_OPTION_PARENTS)


def test_report_totals_cost_and_bytes(tmp_path, caplog):
    config = SpymasterConfig(home=tmp_path)
    client = FakeHistorical(cost_by_schema={"definition": 0.25, "ohlcv-1m": 0.5})
    with caplog.at_level(logging.INFO, logger="test-download"):
        report = download_session_report(config, SESSION, client, LOG)
    assert report.costs_usd == [0.25, 0.5]
    assert report.total_cost_usd == pytest.approx(0.75)
    assert report.bytes_written == sum(p.stat().st_size for p in report.files) > 0
    assert "total cost $0.7500 (spend cap $5.00)" in caplog.text


def test_spend_cap_refusal_downloads_nothing(tmp_path):
    config = SpymasterConfig(home=tmp_path, download_order_flow_schemas=("trades", "mbo"), download_spend_cap_usd=5.0)
    client = FakeHistorical(cost_by_schema={"definition": 0.01, "ohlcv-1m": 0.04, "trades": 1.5, "mbo": 4.0})
    with pytest.raises(SpendCapExceededError) as refused:
        download_session(config, SESSION, client, LOG)
    message = str(refused.value)
    # 0.01 + 0.04 + 1.5 + 4.0 = 5.55 > 5.00
    assert "$5.5500" in message and "spend cap of $5.00" in message and "2024-01-10" in message
    assert len(client.cost_calls) == 4 and client.range_calls == []
    assert dbn_files(tmp_path / "raw") == []


def test_cost_equal_to_the_cap_is_allowed(tmp_path):
    config = SpymasterConfig(home=tmp_path, download_spend_cap_usd=1.0)
    client = FakeHistorical(cost_by_schema={"definition": 0.5, "ohlcv-1m": 0.5})
    assert len(download_session(config, SESSION, client, LOG)) == 2


def test_dry_run_prices_only(tmp_path):
    config = SpymasterConfig(home=tmp_path)
    client = FakeHistorical(cost_by_schema={"ohlcv-1m": 0.1})
    report = download_session_report(config, SESSION, client, LOG, dry_run=True)
    assert len(report.requests) == 2 and report.files == [] and client.range_calls == []
    assert dbn_files(tmp_path / "raw") == []


def test_failing_get_range_leaves_no_file_of_it(tmp_path):
    config = dataclasses.replace(SpymasterConfig(home=tmp_path), download_order_flow_schemas=("trades",))
    client = FakeHistorical(fail_schemas={"ohlcv-1m"})
    with pytest.raises(ConnectionError, match="ohlcv-1m"):
        download_session(config, SESSION, client, LOG)
    # The definition file landed before the failure is whole; nothing of ohlcv-1m, trades never started.
    assert dbn_files(tmp_path / "raw") == [tmp_path / "raw" / "GLBX.MDP3" / "definition" / "glbx-mdp3-20240110-es-fut.definition.dbn.zst"]
    assert dbn_files(tmp_path / ".staging") == []
    assert [c["schema"] for c in client.range_calls] == ["definition", "ohlcv-1m"]
    # A rerun fetches only what is missing.
    retry = FakeHistorical()
    download_session(config, SESSION, retry, LOG)
    assert [c["schema"] for c in retry.range_calls] == ["ohlcv-1m", "trades"]
