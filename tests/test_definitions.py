"""The Dagster definitions load: every asset, its group, its partitions and its lineage."""

from __future__ import annotations

from dagster import AssetKey

from spymaster_assets.definitions import defs
from spymaster_assets.partitions import trading_day_partitions

EXPECTED = {
    "bronze": {"bronze_definitions", "bronze_futures_ohlcv_1m", "bronze_futures_trades", "bronze_futures_bbo", "bronze_futures_mbp10", "bronze_options_definitions", "bronze_options_open_interest", "bronze_options_trades", "bronze_options_bbo"},
    "silver": {"silver_bars", "silver_levels", "silver_book_1s", "silver_depth_flow_1m", "silver_level_state", "silver_outcomes"},
    "gold": {"gold_episodes", "gold_normalization", "gold_model", "gold_setup_index", "gold_signals", "gold_evaluation"},
    "reports": {"session_chart"},
    "catalog": {"duckdb_catalog"},
    "tuning": {"tuned_params"},
}
#: Unpartitioned: one file of views over every partition, and the tuning over a window of sessions.
UNPARTITIONED_GROUPS = {"catalog", "tuning"}
#: Every product of the product table but ES has its own copy of the session graph: keys <prefix>/<asset>, groups <prefix>_<tier>.
OTHER_PRODUCTS = {"mes", "nq", "mnq", "rty", "ym", "gc", "si", "cl", "6e", "spy", "qqq"}
SESSION_TIERS = ("bronze", "silver", "gold", "reports")


def test_the_code_location_holds_es_and_the_data_roots_products(tmp_path):
    from spymaster_assets.product_graph import code_location_products

    assert code_location_products({"SPYMASTER_HOME": str(tmp_path)}) == ("ES",)  # no config.json: ES alone
    (tmp_path / "config.json").write_text('{"products": ["SPY", "GC"]}')
    assert code_location_products({"SPYMASTER_HOME": str(tmp_path)}) == ("ES", "GC", "SPY")
    assert code_location_products({"SPYMASTER_PRODUCTS": "cl"}) == ("ES", "CL")
    assert len(code_location_products({"SPYMASTER_PRODUCTS": "all"})) == 12
    assert all(len(k.path) == 1 for k in defs.resolve_asset_graph().get_all_asset_keys())  # the tests' location: ES alone


def test_every_asset_of_every_product_loads_in_its_group_with_trading_day_partitions():
    from spymaster_assets.definitions import build_definitions
    from spymaster_assets.product_graph import code_location_products

    graph = build_definitions(code_location_products({"SPYMASTER_PRODUCTS": "all"})).resolve_asset_graph()
    groups: dict[str, set[str]] = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        groups.setdefault(node.group_name, set()).add(key.to_user_string())
        if node.group_name not in UNPARTITIONED_GROUPS:
            assert node.partitions_def == trading_day_partitions, key
        assert node.description, f"{key} has no description"
    expected = dict(EXPECTED)
    for prefix in OTHER_PRODUCTS:
        expected.update({f"{prefix}_{tier}": {f"{prefix}/{name}" for name in EXPECTED[tier]} for tier in SESSION_TIERS})
    assert groups == expected


def test_another_products_lineage_stays_inside_the_product():
    from spymaster_assets.definitions import build_definitions
    from spymaster_assets.product_graph import code_location_products

    everything = build_definitions(code_location_products({"SPYMASTER_PRODUCTS": "all"}))
    graph = everything.resolve_asset_graph()
    for prefix in OTHER_PRODUCTS:
        for key in graph.get_all_asset_keys():
            if key.path[0] == prefix:
                assert all(parent.path[0] == prefix for parent in graph.get(key).parent_keys), key
    parents = {k.to_user_string() for k in graph.get(AssetKey(["gc", "gold_setup_index"])).parent_keys}
    assert parents == {"gc/gold_normalization", "gc/gold_model", "gc/gold_episodes"}
    checks = {k.asset_key.to_user_string() for k in graph.asset_check_keys if k.asset_key.path[0] == "gc"}
    assert checks == {"gc/silver_bars", "gc/silver_levels", "gc/silver_outcomes", "gc/gold_setup_index", "gc/gold_model"}
    job = everything.resolve_job_def("materialize_session_job_gc")
    assert {k.path[0] for k in job.asset_layer.selected_asset_keys} == {"gc"}
    assert all(len(k.path) == 1 for k in everything.resolve_job_def("materialize_session_job").asset_layer.selected_asset_keys)


def test_lineage_runs_bronze_to_gold():
    graph = defs.resolve_asset_graph()
    parents = lambda name: {k.to_user_string() for k in graph.get(AssetKey(name)).parent_keys}  # noqa: E731
    assert parents("silver_bars") == {"bronze_futures_ohlcv_1m"}
    assert parents("gold_episodes") == {"silver_level_state", "silver_outcomes"}
    assert parents("silver_level_state") == {
        "silver_bars", "silver_levels", "bronze_futures_trades", "silver_book_1s", "silver_depth_flow_1m", "bronze_futures_ohlcv_1m",
        "bronze_options_definitions", "bronze_options_open_interest", "bronze_options_bbo", "bronze_options_trades",
    }
    assert parents("silver_book_1s") == {"bronze_futures_mbp10", "bronze_futures_bbo"}
    assert parents("silver_depth_flow_1m") == {"bronze_futures_mbp10"}
    assert parents("gold_model") == {"gold_episodes"}
    assert parents("gold_setup_index") == {"gold_normalization", "gold_model", "gold_episodes"}
    # gold_signals of D also reads the earlier sessions' signals (the blend is fitted on them).
    assert parents("gold_signals") == {"gold_setup_index", "gold_model", "gold_episodes", "gold_signals"}
    assert parents("gold_evaluation") == {"gold_signals"}
    assert parents("tuned_params") == {"gold_episodes"}


def test_the_tuning_job_is_not_part_of_the_daily_run():
    daily = defs.resolve_job_def("materialize_session_job")
    assert "tuned_params" not in {k.to_user_string() for k in daily.asset_layer.selected_asset_keys}
    assert defs.resolve_job_def("tune_job") is not None


def test_partitions_skip_weekends_and_cme_holidays():
    keys = set(trading_day_partitions.get_partition_keys())
    assert "2013-10-07" in keys and "2013-10-14" in keys  # Columbus Day: CME equity open
    assert "2013-10-12" not in keys and "2013-10-13" not in keys  # weekend
    assert "2013-12-25" not in keys and "2014-01-01" not in keys  # Christmas, New Year
    assert "2020-01-06" in keys
