-- Ephemeral, not a table: 5M clicks a month would be copied into DuckDB on every commission run.
-- Its SQL is inlined into the tables that aggregate it (int_clicks_aggregated_to_days,
-- int_orders_joined_to_winning_clicks), which keep no path (issue #14).
{{ config(materialized='ephemeral') }}
-- Spark's click validity (asset attribution/clicks_validated, rulebook §3): one row per
-- deduplicated click, is_valid and why not (invalid_reasons: 'ua_bot', 'flood', both comma-separated, or '').
select
    event_id,
    occurred_at_us,
    source,
    promoter_id,
    share_id,
    buyer_id,
    device_id,
    sku_id,
    channel,
    is_valid,
    invalid_reasons
from {{ source('warehouse', 'clicks_validated') }}
