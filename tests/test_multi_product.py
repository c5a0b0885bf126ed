"""One data root, three products (ES, GC, SPY) from real sample files in one raw/: the same graph for each,
histories that never mix, the CLI's --product, the DuckDB catalog per product, and bad input said plainly."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import warnings
from datetime import date
from pathlib import Path

import databento_dbn as dbn
import duckdb
import polars as pl
import pytest
from databento_dbn import v3

from conftest import GC_SESSIONS, NQ_FILE, REPO, assert_same_lake

PRODUCTS = ["ES", "GC", "SPY"]


@pytest.mark.slow  # two more data roots backfilled: about 40 s, run by .ci/run's slow pass
def test_each_products_lake_equals_a_data_root_of_that_product_alone(multi_home, gc_home, spy_home, materialized_home):
    home, _ = multi_home
    assert_same_lake(home / "lake" / "product=GC", gc_home / "lake" / "product=GC")
    assert_same_lake(home / "lake" / "product=SPY", spy_home / "lake" / "product=SPY")
    for tier in ("bronze", "silver", "gold"):  # ES keeps the lake root (its legacy layout)
        assert_same_lake(home / "lake" / tier, materialized_home / "lake" / tier)


def test_a_raw_file_of_an_unconfigured_product_is_named_once_and_left_out(multi_home):
    _, logs = multi_home
    for product in PRODUCTS:
        lines = [line for line in logs[product].splitlines() if "NQ.FUT" in line]
        assert len(lines) == 1 and NQ_FILE.split("/")[-1] in lines[0] and "not a product of this data root (products: ES, GC, SPY): left out" in lines[0]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["evaluate"], "configures 3 products (ES, GC, SPY): choose one with --product"),
        (["evaluate", "--product", "ZZ"], "unknown product 'ZZ': the product table has 6E, CL, ES, GC"),
        (["evaluate", "--product", "NQ"], "--product NQ: not a product of this data root (products: ES, GC, SPY)"),
    ],
)
def test_the_cli_asks_which_product_and_names_the_known_ones(multi_home, capsys, argv, message):
    from spymaster_assets.cli import main

    home, _ = multi_home
    assert main(["--home", str(home), *argv]) == 2
    assert message in capsys.readouterr().err


def test_query_answers_per_product_in_its_own_units_and_hours(multi_home, capsys):
    from spymaster_assets.cli import main

    home, _ = multi_home
    assert main(["--home", str(home), "query", "--product", "gc", "--date", "2013-10-10", "--time", "09:00", "--json"]) == 0
    gc = json.loads(capsys.readouterr().out)
    assert main(["--home", str(home), "query", "--product", "ES", "--date", "2013-10-10", "--time", "10:30", "--json"]) == 0
    es = json.loads(capsys.readouterr().out)
    assert 1200 < gc["close"] < 1400 and 1600 < es["close"] < 1800  # gold in USD/oz, ES in index points
    assert main(["--home", str(home), "query", "--product", "GC", "--date", "2013-10-10", "--time", "08:10"]) == 2  # before GC's 08:20 open
    assert "--time 08:10 is outside the anchor window: choose a bar close after 08:20 and up to 11:20 New York time" in capsys.readouterr().err
    assert main(["--home", str(home), "query", "--product", "GC", "--date", "2013-10-10", "--time", "09:00"]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("GC 2013-10-10 09:00 ET  close 1298.10  ATR 2.15 $/oz")


def test_the_duckdb_catalog_has_a_product_column_and_views_per_product(multi_home):
    from spymaster_assets.catalog.views import write_catalog

    home, _ = multi_home
    result = write_catalog(home / "lake", home / "spymaster.duckdb")
    con = duckdb.connect(str(home / "spymaster.duckdb"), read_only=True)
    counts = dict(con.sql("select product, count(*) from gold_signals group by 1").fetchall())
    assert set(counts) == set(PRODUCTS)
    for product in PRODUCTS:
        view = f"{product.lower()}_gold_signals"
        assert result.views[view] == counts[product] == con.sql(f'select count(*) from "{view}"').fetchall()[0][0]
    lake_rows = pl.read_parquet(str(home / "lake" / "product=GC" / "gold" / "gold_signals" / "*" / "part-0.parquet")).height
    assert counts["GC"] == lake_rows


def test_a_tick_size_override_that_disagrees_with_the_definitions_is_logged(tmp_path):
    from dagster import DagsterInstance, materialize

    from spymaster_assets.product_graph import product_assets
    from spymaster_resources import SpymasterResource

    shutil.copytree(REPO / "data" / "sample" / "GC" / "raw", tmp_path / "raw")
    (tmp_path / "config.json").write_text(json.dumps({"products": ["GC"], "product_table": {"GC": {"tick_size": 0.25}}}))
    assets = product_assets("GC")
    wanted = {"gc/bronze_definitions", "gc/bronze_futures_ohlcv_1m", "gc/silver_bars"}
    instance = DagsterInstance.ephemeral()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = materialize(assets, selection=[a for a in assets if a.key.to_user_string() in wanted], partition_key="2013-10-08",
                             instance=instance, resources={"spymaster": SpymasterResource(home=str(tmp_path))})
    assert result.success
    lines = [e.message for e in instance.all_logs(result.run_id) if "disagrees" in (e.message or "")]
    assert len(lines) == 1
    assert f"{tmp_path / 'config.json'}: product_table.GC.tick_size 0.25 disagrees with the definitions' min_price_increment 0.1 of GCZ3 on 2013-10-08: the definitions win" in lines[0]
    meta = result.asset_materializations_for_node("silver_bars")[0].metadata
    assert meta["tick_size"].value == 0.1


@pytest.mark.slow  # a server and Chromium: about a minute, run by .ci/run's slow pass
def test_the_screen_picks_a_product_and_answers_as_its_gold_signals(multi_home, tmp_path):
    import urllib.request

    from servers import running_screen, sse_events

    home, _ = multi_home
    with running_screen(home, tmp_path / "serve.log", drop_env=("DAGSTER_HOME", "DATABENTO_API_KEY")) as url:
        products = json.load(urllib.request.urlopen(f"{url}/api/products", timeout=30))
        assert products["default"] == "ES" and [p["symbol"] for p in products["products"]] == PRODUCTS
        assert [p["tick_size"] for p in products["products"]] == [0.25, 0.1, 0.01]
        listed = json.load(urllib.request.urlopen(f"{url}/api/sessions?product=gc", timeout=30))
        assert listed["product"] == "GC" and listed["sessions"] == [d.isoformat() for d in reversed(GC_SESSIONS)]
        events = sse_events(f"{url}/api/replay?product=GC&date=2013-10-10&speed=0&until=09:30")
        assert events[0][0] == "session" and events[-1][0] == "end"
        bars = [d for n, d in events if n == "bar"]
        signals = pl.read_parquet(home / "lake" / "product=GC" / "gold" / "gold_signals" / "date=2013-10-10" / "part-0.parquet")
        shown = [(bar["ts_utc"], a) for bar in bars for a in bar["answers"]]
        assert shown and bars[-1]["time_ny"] == "09:30"
        for ts, answer in shown:
            row = signals.filter((pl.col("ts_event").dt.to_string("%Y-%m-%dT%H:%M:%S+00:00") == ts) & (pl.col("level_kind") == answer["level_kind"])).row(0, named=True)
            assert [answer["p"][o] for o in ("BREAK", "REJECT", "CHOP")] == [row["p_break"], row["p_reject"], row["p_chop"]]
        problem = sse_events(f"{url}/api/replay?product=NQ&date=2013-10-10&speed=0")
        assert problem == [("problem", {"message": "product 'NQ' is not one of this data root's products (ES, GC, SPY)"})]
        # In Chromium: the picker on GC, its title, its candles and answers, a neighbour opening GC's session.
        done = subprocess.run(
            ["node", str(REPO / "scripts" / "screen_browser_check.mjs"), "--url", url, "--product", "GC", "--date", "2013-10-11", "--until", "09:02",
             "--out-dir", str(tmp_path), "--chromium", os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")],
            capture_output=True, text=True, timeout=300, cwd=REPO,
        )
        assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert (result["title"], result["product"], result["products"]) == ("Spymaster: GC levels", "GC", PRODUCTS)
        assert result["answers"] > 0 and result["neighbour"]["date"] < "2013-10-11"
