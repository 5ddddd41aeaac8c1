"""The Dagster definitions load (without starting Spark or touching Kafka) and the asset graph
is frozen: renaming an asset must be a deliberate change of this snapshot."""

import pytest

pytestmark = pytest.mark.integration

EXPECTED_ASSETS = {
    "attribution/clicks_validated", "attribution/order_attribution",
    "intermediate/int_order_lines_joined_to_attribution", "intermediate/int_order_lines_joined_to_rates",
    "intermediate/int_order_lines_netted_as_of_period",
    "landing/clicks", "landing/orders", "landing/refunds",
    "marts/fct_commission_entitlements", "payouts/payout_batch",
    "reference/commission_rules", "reference/products", "reference/promoters",
    "settlement/promoter_balances",
    "staging/stg_attribution", "staging/stg_commission_rules", "staging/stg_order_lines",
    "staging/stg_order_status_events", "staging/stg_orders_paid", "staging/stg_products",
    "staging/stg_promoters", "staging/stg_refunds",
}


def test_definitions_load_and_graph_snapshot():
    from pipelines.definitions import defs
    from pipelines.lib import spark

    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == EXPECTED_ASSETS
    assert {j.name for j in defs.jobs} == {"reference_job", "attribution_job", "commission_job", "release_job"}
    checks = {f"{k.asset_key.to_user_string()}:{k.name}" for k in graph.asset_check_keys}
    assert {"marts/fct_commission_entitlements:gx_commission", "settlement/promoter_balances:gx_settlement",
            "payouts/payout_batch:gx_payout"} <= checks
    assert spark._session is None   # loading never starts a JVM


def test_partition_helpers():
    from pipelines.lib.partitions import period_dbt_vars, window_dates

    assert window_dates("2026-10-30", "2026-11-02") == ["2026-10-30", "2026-10-31", "2026-11-01", "2026-11-02"]
    v = period_dbt_vars("2026-12-01")
    assert v["period"] == "2026-12" and v["next_period"] == "2027-01"
    assert v["period_end_us"] - v["period_start_us"] == 31 * 86_400_000_000
