"""The suites, one per stage. Each is a function of `gx.expectations` (and the config) that
returns the expectation list, so the same code runs in Dagster checks and in tests.

Who checks what (README, *Quality gates*): dbt tests own what a dbt model's rows must hold
(keys not null and unique, vocabularies, one row per key); these suites own the stage boundaries
— the landing files, Spark's outputs, settlement and the payout rows, all written outside dbt —
and, on the commission mart, the money ranges the release requires. A check lives in one of the two.
"""

from __future__ import annotations

from streaming.contracts import CHANNELS, EVENT_TYPES, SOURCES

EVENT_SOURCES = list(SOURCES)   # the contract's Literal


def landing_events(E) -> list:
    """Every landed event (rulebook §1): required fields, enums, a sane occurred_at (not after its
    capture by more than the tolerated clock skew, not older than the tolerated age), and each
    Kafka record landed exactly once."""
    return [
        *(E.ExpectColumnValuesToNotBeNull(column=c) for c in ("event_id", "event_type", "source", "occurred_at_us")),
        E.ExpectColumnValuesToBeInSet(column="event_type", value_set=list(EVENT_TYPES)),
        E.ExpectColumnValuesToBeInSet(column="source", value_set=EVENT_SOURCES),
        E.ExpectColumnValuesToBeInSet(column="channel", value_set=list(CHANNELS)),   # clicks only (null otherwise)
        E.ExpectColumnPairValuesAToBeGreaterThanB(column_A="latest_sane_us", column_B="occurred_at_us", or_equal=True),
        E.ExpectColumnPairValuesAToBeGreaterThanB(column_A="occurred_at_us", column_B="earliest_sane_us", or_equal=True),
        E.ExpectCompoundColumnsToBeUnique(column_list=["_topic", "_partition", "_offset"]),
    ]


def landing_lines(E) -> list:
    """Order lines of landed order_paid events: paid_fen = quantity × unit_price_fen − discount_fen."""
    return [
        E.ExpectColumnPairValuesToBeEqual(column_A="paid_fen", column_B="expected_paid_fen"),
        E.ExpectColumnValuesToBeBetween(column="quantity", min_value=1),
        E.ExpectColumnValuesToBeBetween(column="unit_price_fen", min_value=0),
        E.ExpectColumnValuesToBeBetween(column="discount_fen", min_value=0),
        E.ExpectColumnValuesToBeBetween(column="paid_fen", min_value=0),
        E.ExpectCompoundColumnsToBeUnique(column_list=["event_id", "line_id"]),
    ]


def landing_deadletters(E, max_share: float) -> list:
    """Dead letters per capture day under the configured ceiling (quality.max_deadletter_share)."""
    return [E.ExpectColumnValuesToBeBetween(column="dead_share", min_value=0, max_value=max_share)]


def click_validity(E, landed_clicks: int) -> list:
    """Rulebook §3: the reason vocabulary, and every landed click present once."""
    return [
        E.ExpectColumnValuesToBeInSet(column="invalid_reasons", value_set=["", "ua_bot", "flood", "ua_bot,flood"]),
        E.ExpectColumnValuesToBeInSet(column="valid_matches_reasons", value_set=[True]),
        E.ExpectColumnValuesToBeBetween(column="flood_count", min_value=1),
        E.ExpectColumnValuesToBeUnique(column="event_id"),
        E.ExpectColumnValuesToBeInSet(column="in_landing", value_set=[True]),
        E.ExpectTableRowCountToEqual(value=landed_clicks),
    ]


def attribution(E, landed_orders: int) -> list:
    """Rulebook §4: one row per landed order_paid event; an attributed order's click exists, is
    valid, belongs to its buyer, is not after the order and lies in the lookback window (last click)."""
    return [
        E.ExpectColumnValuesToBeUnique(column="order_event_id"),
        E.ExpectTableRowCountToEqual(value=landed_orders),
        E.ExpectColumnValuesToBeInSet(column="attribution_reason",
                                      value_set=["share_token", "last_click", "lock", "organic"]),
        E.ExpectColumnValuesToBeInSet(column="reason_matches_promoter", value_set=[True]),
        *(E.ExpectColumnValuesToBeInSet(column=c, value_set=[True])      # null (organic) rows are skipped
          for c in ("click_exists", "click_is_valid", "click_of_buyer", "click_not_after_order", "click_in_window")),
    ]


def commission(E) -> list:
    """fct_commission_entitlements of one period (rulebook §5): the money ranges. Its keys, roles,
    statuses and one row per (promoter, line, role) are dbt tests of the model (_marts__models.yml,
    dbt_project/tests/); entitled ≤ net is in both (the dbt test fails first, within dbt build)."""
    return [
        E.ExpectColumnValuesToBeBetween(column="entitled_fen", min_value=0),
        E.ExpectColumnValuesToBeBetween(column="rate_e4", min_value=0, max_value=10000),
        E.ExpectColumnPairValuesAToBeGreaterThanB(column_A="net_fen", column_B="entitled_fen", or_equal=True),
        E.ExpectColumnPairValuesAToBeGreaterThanB(column_A="paid_fen", column_B="net_fen", or_equal=True),
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
