-- The attribution decision trace of each order (its counted order_paid, rulebook §1): every click
-- of the buyer in the order's lookback window, valid or not, with its promoter, validity reasons,
-- whether it won and, if not, the rule of §4 it lost by (reason codes: README, "Why this
-- promoter"). An order without any click in its window has one row (no_click_in_window); under
-- wechat_lock the lock's click may be older than the window (a row with candidate_rank null).
select
    cast(t.order_id as varchar) as order_id,
    cast(t.order_event_id as varchar) as order_event_id,
    cast(t.buyer_id as varchar) as buyer_id,
    cast(t.order_share_id as varchar) as order_share_id,
    cast(t.paid_at_us as bigint) as paid_at_us,
    {{ shanghai_time('t.paid_at_us') }} as paid_at,
    {{ shanghai_date('t.paid_at_us') }} as paid_date,
    cast(t.attribution_reason as varchar) as attribution_reason,
    cast(t.attributed_promoter_id as varchar) as attributed_promoter_id,
    cast(t.candidate_rank as integer) as candidate_rank,
    cast(t.clicks_in_window as integer) as clicks_in_window,
    cast(t.click_event_id as varchar) as click_event_id,
    cast(t.click_occurred_at_us as bigint) as click_occurred_at_us,
    {{ shanghai_time('t.click_occurred_at_us') }} as click_occurred_at,
    cast(t.promoter_id as varchar) as promoter_id,
    cast(t.click_share_id as varchar) as click_share_id,
    cast(t.is_valid as boolean) as is_valid,
    cast(t.invalid_reasons as varchar) as invalid_reasons,
    cast(t.outcome as varchar) as outcome,
    cast(t.reason as varchar) as reason,
    cast(t.attribution_model as varchar) as attribution_model
from {{ ref('stg_attribution__decisions') }} as t
inner join {{ ref('int_orders_paid_first') }} as o on t.order_event_id = o.order_event_id
