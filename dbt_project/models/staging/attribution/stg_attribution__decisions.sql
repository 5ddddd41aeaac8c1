-- Spark's attribution decision trace (asset attribution/attribution_decisions): one row per
-- (order_paid event, click of its buyer in the lookback window, valid or not), copied into a
-- table (no path kept, issue #14). Duplicate order_paid events have their own rows here; the
-- mart keeps the counted one.
select
    order_id,
    order_event_id,
    buyer_id,
    order_share_id,
    paid_at_us,
    attribution_reason,
    attributed_promoter_id,
    candidate_rank,
    clicks_in_window,
    click_event_id,
    click_occurred_at_us,
    promoter_id,
    click_share_id,
    is_valid,
    invalid_reasons,
    outcome,
    reason,
    model as attribution_model
from {{ source('attribution', 'decisions') }}
