"""Every shipped product through the whole graph and `spymaster evaluate --product P` (slow: about 4 minutes).

Real data for ES, GC and SPY is tested in the default run (test_products_real_data, test_multi_product).
Here every product of the table gets sessions of its own in one data root configured for all twelve:
the futures from the bars-only generator (SIMULATED: each product's root, listed months, tick and
clock), QQQ from SPY's real bars relabelled QQQ (not QQQ's data: what is checked is the path, not
the prices). Each is backfilled bronze to gold with `--product` and evaluated; the evaluation must
print every model beside the base rate and the distance lookup.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from conftest import CHAIN_CONFIG, SHARED_DATA, load_script
from spymaster_core.config import SpymasterConfig
from spymaster_core.products import PRODUCTS
from spymaster_resources.lake import Lake

pytestmark = pytest.mark.slow

START_PRICES = {"ES": 5150.0, "MES": 5150.0, "NQ": 18000.0, "MNQ": 18000.0, "RTY": 2000.0, "YM": 39000.0, "GC": 2000.0, "SI": 23.0, "CL": 78.0, "6E": 1.09}
SESSIONS = 7


@pytest.fixture(scope="module")
def every_product_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("every")
    generator, converter = load_script("generate_session"), load_script("lean_to_dbn")
    for symbol, price in START_PRICES.items():
        generator.generate_bars_sessions(date(2024, 3, 4), SESSIONS, home / "raw" / symbol.lower(), start_price=price, product=symbol)
    spy = SHARED_DATA / "lean" / "Data" / "equity" / "usa" / "minute" / "spy"
    for zip_path in sorted(spy.glob("2013100*_trade.zip")) + sorted(spy.glob("2013101*_trade.zip")):
        converter.convert_equity_day(zip_path, home / "raw" / "spy", "SPY")
        converter.convert_equity_day(zip_path, home / "raw" / "qqq", "QQQ", source_ticker="SPY")
    (home / "config.json").write_text(json.dumps({"products": list(PRODUCTS), **CHAIN_CONFIG}))
    return home


@pytest.mark.parametrize("symbol", list(PRODUCTS))
def test_every_shipped_product_runs_the_whole_graph_and_is_evaluated(every_product_home, symbol, capsys):
    from spymaster_assets.cli import main

    home = every_product_home
    start, end = ("2013-10-04", "2013-10-11") if symbol in ("SPY", "QQQ") else ("2024-03-04", "2024-03-13")
    assert main(["--home", str(home), "backfill", "--product", symbol, "--start", start, "--end", end, "--quiet", "--no-charts"]) == 0
    config = SpymasterConfig.for_home(home).for_product(symbol)
    lake = Lake(config.lake_dir)
    days = lake.dates("gold", "gold_signals")
    assert len(days) >= 6, days
    fronts = {str(s) for d in days for s in lake.read("bronze", "bronze_futures_ohlcv_1m", d)["raw_symbol"].unique()}
    assert all(PRODUCTS[symbol].is_outright_symbol(s) for s in fronts), fronts
    capsys.readouterr()
    assert main(["--home", str(home), "evaluate", "--product", symbol]) == 0
    out = capsys.readouterr().out
    for model in ("base_rate", "distance", "knn", "xgboost", "answer"):
        assert f"\n{model} " in out, f"{symbol}: no {model} row in\n{out}"
