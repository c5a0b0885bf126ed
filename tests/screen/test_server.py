"""`spymaster serve` for real: the server started in its own process group on the materialized sample
sessions, its API read over HTTP (server-sent events), and the page driven in Debian's Chromium
(``scripts/screen_browser_check.mjs``, playwright-core). The server is stopped by its process group
whatever the outcome."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import polars as pl
import pytest

from spymaster_core.config import OUTCOMES
from spymaster_resources.lake import Lake

from conftest import CHAIN_SESSIONS
from servers import running_screen, sse_events

REPO = Path(__file__).resolve().parents[2]
SPYMASTER = Path(sys.executable).parent / "spymaster"
BROWSER_CHECK = REPO / "scripts" / "screen_browser_check.mjs"
CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
DAY = CHAIN_SESSIONS[-1]


@pytest.fixture(scope="module")
def screen(materialized_home):
    """``spymaster serve`` on the chain sessions, without a live key: yields its base URL."""
    log = materialized_home / "reports" / "serve.log"
    log.parent.mkdir(exist_ok=True)
    with running_screen(materialized_home, log, drop_env=("DAGSTER_HOME", "DATABENTO_API_KEY")) as url:
        yield url


def test_the_sessions_of_the_lake_are_listed_latest_first_and_live_says_why_not(screen):
    listed = json.load(urllib.request.urlopen(f"{screen}/api/sessions", timeout=30))
    assert listed["sessions"] == [d.isoformat() for d in reversed(CHAIN_SESSIONS)] and listed["latest"] == DAY.isoformat()
    # No API key here (and maybe no session trading now): the page opens on the latest session, and says why.
    assert listed["live"]["open"] is False and listed["live"]["reason"]
    events = sse_events(f"{screen}/api/live")
    assert events[-1][0] == "problem" and events[-1][1]["message"].startswith("live: "), events


def test_a_replay_streams_every_bar_and_the_answers_of_gold_signals(screen, materialized_home):
    events = sse_events(f"{screen}/api/replay?date={DAY}&speed=0&until=11:00")
    names = [n for n, _ in events]
    assert names[0] == "session" and names[-1] == "end" and "problem" not in names
    meta = events[0][1]
    assert meta["index_as_of"] == DAY.isoformat() and meta["index_sessions"] == 4 and meta["vector_schemas"] == ["bars"]
    # Point in time: the reliability line scores the sessions before the day only (one scored so far: no interval).
    assert meta["reliability"].startswith("walk-forward through 2013-10-10 (1 session, ") and "(no interval from 1 session)" in meta["reliability"]
    bars = [d for n, d in events if n == "bar"]
    assert bars[0]["time_ny"] == "04:02" and bars[-1]["time_ny"] == "11:00" and len(bars) == (11 * 60 - 4 * 60) // 2
    # Every answer shown is the batch gold_signals row of that bar and level.
    signals = Lake(materialized_home / "lake").read("gold", "gold_signals", DAY)
    shown = [(bar["ts_utc"], a) for bar in bars for a in bar["answers"]]
    assert shown
    for ts, answer in shown:
        row = signals.filter((pl.col("ts_event").dt.to_string("%Y-%m-%dT%H:%M:%S+00:00") == ts) & (pl.col("level_kind") == answer["level_kind"])).row(0, named=True)
        assert [answer["p"][o] for o in OUTCOMES] == [row[f"p_{o.lower()}"] for o in OUTCOMES]
        assert answer["smooth"]["BREAK"] == row["p_break_smooth"] and answer["n_eff"] == row["effective_sample_size"]
    assert all(len(a["neighbours"]) <= 5 for _, a in shown) and any(a["neighbours"] for _, a in shown)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("date=2013-10-12&speed=0", "2013-10-12 is not a CME trading session"),
        ("date=2013-10-14&speed=0", "2013-10-14: no answer as of that day in the lake"),
        ("date=yesterday&speed=0", "bad request: date='yesterday'"),
        ("date=2013-10-11&speed=0&until=25:00", "until='25:00' (HH:MM New York)"),
    ],
)
def test_a_bad_session_is_a_message_and_the_server_keeps_running(screen, query, message):
    events = sse_events(f"{screen}/api/replay?{query}")
    assert events[0][0] == "problem" and message in events[0][1]["message"], events
    assert json.load(urllib.request.urlopen(f"{screen}/api/sessions", timeout=30))["latest"] == DAY.isoformat()


def test_the_page_plays_a_session_and_opens_a_neighbour_in_chromium(screen, materialized_home):
    """Chromium loads the page, plays a session as fast as possible to 10:30, sees candles, level lines and
    the probability panel, clicks a neighbour and sees its session marked at that bar (screenshots printed)."""
    out = materialized_home / "reports"
    done = subprocess.run(
        ["node", str(BROWSER_CHECK), "--url", screen, "--date", DAY.isoformat(), "--until", "10:30", "--out-dir", str(out), "--chromium", str(CHROMIUM)],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n(install: apt-get install -y chromium; npm ci)"
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["bars"] == (10 * 60 + 30 - 4 * 60) // 2 and result["answers"] > 0 and result["levels"]
    assert (result["title"], result["product"], result["products"]) == ("Spymaster: ES levels", "ES", ["ES"])
    assert result["neighbour"]["date"] < DAY.isoformat() and Path(result["screenshot"]).is_file() and Path(result["neighbour_screenshot"]).is_file()
    print(f"\nscreen screenshots: replay {result['screenshot']}  neighbour {result['neighbour_screenshot']}")
