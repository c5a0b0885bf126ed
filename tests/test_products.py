"""The product table: shipped terms, config.json overrides, per-product clocks and calendars."""

from __future__ import annotations

import dataclasses
import json
from datetime import date, datetime, time, timezone

import pytest

from spymaster_core.config import SpymasterConfig
from spymaster_core.products import PRODUCTS, UnknownProductError, get_product, product_table
from spymaster_assets.sessions import is_trading_session, session_bounds_utc, session_date_of, trading_sessions

SHIPPED = ["ES", "MES", "NQ", "MNQ", "RTY", "YM", "GC", "SI", "CL", "6E", "SPY", "QQQ"]


def test_every_instrument_a_level_trader_watches_ships():
    assert sorted(PRODUCTS) == sorted(SHIPPED)
    assert {s: PRODUCTS[s].contract_months for s in ("ES", "NQ", "RTY", "YM", "6E", "GC", "SI", "CL")} == {
        "ES": "HMUZ", "NQ": "HMUZ", "RTY": "HMUZ", "YM": "HMUZ", "6E": "HMUZ", "GC": "GJMQVZ", "SI": "HKNUZ", "CL": "FGHJKMNQUVXZ",
    }
    assert {s: PRODUCTS[s].rth_open for s in ("ES", "SPY", "CL", "GC", "SI", "6E")} == {
        "ES": time(9, 30), "SPY": time(9, 30), "CL": time(9, 0), "GC": time(8, 20), "SI": time(8, 25), "6E": time(8, 20),
    }
    assert PRODUCTS["ES"].options_roots and not PRODUCTS["NQ"].options_roots
    assert PRODUCTS["SPY"].dataset == "XNAS.ITCH" and PRODUCTS["SPY"].download_symbols == ("SPY",)
    assert PRODUCTS["NQ"].download_symbols == ("NQ.FUT",) and PRODUCTS["NQ"].download_stype_in == "parent"


def test_the_default_configuration_is_es_as_the_product_table_says():
    """Nothing ES-specific is left outside the table: ES's product clock equals the defaults."""
    assert SpymasterConfig().for_product("ES") == SpymasterConfig()


def test_a_product_shifts_the_clock_and_keeps_the_windows_lengths():
    cl = SpymasterConfig().for_product("cl")  # case-insensitive
    assert (cl.product, cl.rth_open, cl.anchor_start, cl.anchor_end) == ("CL", time(9, 0), time(9, 0), time(12, 0))
    assert cl.tick_size_points == 0.01 and cl.exchange_calendar == "CMEGlobex_CL"
    spy = SpymasterConfig().for_product("SPY")
    assert (spy.session_open, spy.session_close, spy.session_opens_previous_day) == (time(4, 0), time(20, 0), False)


def test_outright_symbols_follow_the_contract_cycle():
    gc, cl, es, spy = (PRODUCTS[s] for s in ("GC", "CL", "ES", "SPY"))
    assert gc.is_outright_symbol("GCZ3") and gc.is_outright_symbol("GCZ13")
    assert not gc.is_outright_symbol("GCX3")  # November is listed but not an active month of the table
    assert cl.is_outright_symbol("CLX3") and not cl.is_outright_symbol("CLZ3-CLF4")
    assert es.is_outright_symbol("ESZ3") and not es.is_outright_symbol("MESZ3") and not es.is_outright_symbol("ESZ3-ESH4")
    assert spy.is_outright_symbol("SPY") and not spy.is_outright_symbol("QQQ")


@pytest.mark.parametrize(("symbol", "price", "rounded"), [("ES", 1676.37, 1676.25), ("GC", 1313.86, 1313.9), ("6E", 1.356234, 1.35625), ("YM", 15070.4, 15070.0), ("SPY", 167.2749, 167.27)])
def test_tick_rounding_in_each_products_tick(symbol, price, rounded):
    assert PRODUCTS[symbol].round_to_tick(price) == rounded


def test_sessions_come_from_each_products_calendar():
    # 2013-10-14 (Columbus Day): CME trades, NYSE trades too; 2014-01-20 (MLK day): CME equity trades, NYSE is shut.
    es, spy = SpymasterConfig(), SpymasterConfig().for_product("SPY")
    assert is_trading_session(date(2014, 1, 20), es) and not is_trading_session(date(2014, 1, 20), spy)
    assert trading_sessions(date(2013, 10, 7), date(2013, 10, 11), spy) == [date(2013, 10, d) for d in range(7, 12)]
    # A session that closes before the regular-hours open has no level to trade: Good Friday 2024 (CME equity closed 09:15 ET).
    assert not is_trading_session(date(2024, 3, 29), es)
    assert not is_trading_session(date(2013, 12, 25), SpymasterConfig().for_product("GC"))


def test_an_equity_session_is_its_own_calendar_day():
    spy = SpymasterConfig().for_product("SPY")
    start, end = session_bounds_utc(date(2013, 10, 8), spy)
    assert (start, end) == (datetime(2013, 10, 8, 8, tzinfo=timezone.utc), datetime(2013, 10, 9, 0, tzinfo=timezone.utc))
    assert session_date_of(datetime(2013, 10, 8, 23, 30, tzinfo=timezone.utc), spy) == date(2013, 10, 8)  # 19:30 ET
    assert session_date_of(datetime(2013, 10, 8, 23, 30, tzinfo=timezone.utc)) == date(2013, 10, 9)  # ES: the evening opens the next session


def test_config_json_overrides_a_product_and_chooses_the_products(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"products": ["GC", "SPY"], "product_table": {"GC": {"rth_open": "08:30", "tick_size": 0.2}}}))
    cfg = SpymasterConfig.for_home(tmp_path)
    assert cfg.products == ("GC", "SPY") and cfg.product == "GC"  # the first product serves by default
    assert (cfg.rth_open, cfg.anchor_start, cfg.tick_size_points) == (time(8, 30), time(8, 30), 0.2)
    assert cfg.for_product("SPY").rth_open == time(9, 30)
    assert cfg.for_product("SPY").for_product("GC") == cfg  # round trip through another product


def test_a_new_product_must_be_whole():
    table = product_table({"ZN": {**{k: v for k, v in dataclasses.asdict(PRODUCTS["ES"]).items() if k != "symbol"}, "root": "ZN", "rth_open": "08:20", "rth_close": "15:00"}})
    assert table["ZN"].root == "ZN" and table["ZN"].rth_open == time(8, 20)
    with pytest.raises(ValueError, match=r"config.json: product_table.ZN: a new product needs \['calendar'"):
        product_table({"ZN": {"root": "ZN"}})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"products": ["ES", "XX"]}, "products names 'XX', which the product table lacks (known: 6E, CL, ES"),
        ({"product_table": {"GC": {"tick": 0.1}}}, "product_table.GC: unknown product fields ['tick']"),
        ({"product_table": {"GC": {"tick_size": -1}}}, "product_table.GC: product GC: tick_size -1.0 is not positive"),
        ({"product_table": {"GC": {"rth_open": "25:00"}}}, "product_table.GC:"),
        ({"product_table": {"CL": {"contract_months": "ABC"}}}, "contract_months 'ABC' are not CME month codes"),
        ({"rth_open": "09:00"}, "a product's clock, calendar and tick size are set in product_table"),
        ({"products": []}, "products is empty"),
    ],
)
def test_bad_product_configuration_names_the_file_and_key(tmp_path, values, message):
    (tmp_path / "config.json").write_text(json.dumps(values))
    with pytest.raises(ValueError) as excinfo:
        SpymasterConfig.for_home(tmp_path)
    assert str(tmp_path / "config.json") in str(excinfo.value) and message in str(excinfo.value)


def test_an_unknown_product_lists_the_known_ones():
    with pytest.raises(UnknownProductError, match="unknown product 'ZZ': the product table has 6E, CL, ES, GC, MES, MNQ, NQ, QQQ, RTY, SI, SPY, YM"):
        get_product("ZZ")
    with pytest.raises(UnknownProductError):
        SpymasterConfig().for_product("ZZ")
