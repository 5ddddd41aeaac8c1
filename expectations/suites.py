"""The suites, one per stage. Each is a function of `gx.expectations` (and the config) that
returns the expectation list, so the same code runs in Dagster checks and in tests."""

from __future__ import annotations


def commission(E) -> list:
    """fct_commission_entitlements of one period (rulebook §5)."""
    return [
        E.ExpectColumnValuesToNotBeNull(column="promoter_id"),
        E.ExpectColumnValuesToBeInSet(column="role", value_set=["direct", "override"]),
        E.ExpectColumnValuesToBeBetween(column="entitled_fen", min_value=0),
        E.ExpectColumnValuesToBeBetween(column="rate_e4", min_value=0, max_value=10000),
        E.ExpectColumnPairValuesAToBeGreaterThanB(column_A="net_fen", column_B="entitled_fen", or_equal=True),
        E.ExpectColumnPairValuesAToBeGreaterThanB(column_A="paid_fen", column_B="net_fen", or_equal=True),
        E.ExpectCompoundColumnsToBeUnique(column_list=["promoter_id", "order_id", "line_id", "role"]),
        E.ExpectColumnValuesToBeInSet(column="currency", value_set=["CNY"]),
    ]


def settlement(E) -> list:
    """Balances of one period (rulebook §6): carried in + movement = paid gross + carried out."""
    return [
        E.ExpectColumnValuesToBeInSet(column="reconciles", value_set=[True]),
        E.ExpectColumnValuesToBeUnique(column="promoter_id"),
        E.ExpectColumnValuesToBeInSet(column="net_is_gross_minus_tax", value_set=[True]),
        E.ExpectColumnValuesToBeBetween(column="tax_fen", min_value=0),
    ]


def payout(E, threshold_fen: int) -> list:
    """The rows of payout.csv before it is written (rulebook §6-§8)."""
    return [
        E.ExpectColumnValuesToBeUnique(column="promoter_id"),
        E.ExpectColumnValuesToBeBetween(column="gross_fen", min_value=threshold_fen),
        E.ExpectColumnValuesToNotBeNull(column="payee_openid"),
        E.ExpectColumnValuesToBeInSet(column="net_is_gross_minus_tax", value_set=[True]),
        E.ExpectColumnValuesToBeInSet(column="suspended_before_end", value_set=[False]),
    ]
