-- Every order line with its attribution and settlement clock (rulebook §6):
-- confirmed_at = min(order_confirmed, paid_at + auto_confirm_days); eligible_at = confirmed_at + return window.
{% set day_us = 86400000000 %}
with status as (
    select
        order_id,
        min(case when event_type = 'order_confirmed' then occurred_at_us end) as confirmed_event_at_us,
        min(case when event_type = 'order_cancelled' then occurred_at_us end) as cancelled_at_us
    from {{ ref('int_order_events_deduplicated') }}
    where event_type in ('order_confirmed', 'order_cancelled')
    group by order_id
),

joined as (
    select
        l.order_id,
        l.line_id,
        l.sku_id,
        l.paid_fen,
        l.currency,
        o.buyer_id,
        o.paid_at_us,
        a.promoter_id,
        a.click_event_id,
        coalesce(a.attribution_reason, 'organic') as attribution_reason,
        s.cancelled_at_us,
        least(
            coalesce(s.confirmed_event_at_us, o.paid_at_us + {{ var('auto_confirm_days') }} * {{ day_us }}),
            o.paid_at_us + {{ var('auto_confirm_days') }} * {{ day_us }}
        ) as confirmed_at_us
    from {{ ref('int_order_lines_unnested') }} as l
    inner join {{ ref('int_orders_paid_first') }} as o on l.order_id = o.order_id
    left join {{ ref('stg_warehouse__order_attribution') }} as a on o.order_event_id = a.order_event_id
    left join status as s on l.order_id = s.order_id
)

select
    *,
    confirmed_at_us + {{ var('return_window_days') }} * {{ day_us }} as eligible_at_us
from joined
