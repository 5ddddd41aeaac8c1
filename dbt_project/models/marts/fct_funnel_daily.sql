-- The click → order → refund funnel per Asia/Shanghai day, channel and source (storefront /
-- bot): clicks and valid clicks of the day (by the click's channel and source), the attributed
-- orders paid that day (by the channel and source of the click that won them, rulebook §4), and
-- of those, the ones refunded or cancelled to date (any refund counts: fct_orders' statuses
-- refunded, partially_refunded, cancelled). Organic orders have no click, so no channel: they
-- are in fct_orders only. Every count sums across days, channels and sources.
with clicks as (
    select
        date_day,
        channel,
        source,
        sum(clicks) as clicks,
        sum(valid_clicks) as valid_clicks
    from {{ ref('int_clicks_aggregated_to_days') }}
    group by all
),

orders as (
    select
        o.paid_date as date_day,
        w.channel,
        w.source,
        count(*) as attributed_orders,
        count(*) filter (where o.status in ('refunded', 'partially_refunded', 'cancelled')) as refunded_orders
    from {{ ref('fct_orders') }} as o
    inner join {{ ref('int_orders_joined_to_winning_clicks') }} as w on o.order_id = w.order_id
    group by all
),

keys as (
    select
        date_day,
        channel,
        source
    from clicks
    union
    select
        date_day,
        channel,
        source
    from orders
)

select
    k.date_day,
    cast(k.channel as varchar) as channel,
    cast(k.source as varchar) as source,
    cast(coalesce(c.clicks, 0) as bigint) as clicks,
    cast(coalesce(c.valid_clicks, 0) as bigint) as valid_clicks,
    cast(coalesce(o.attributed_orders, 0) as bigint) as attributed_orders,
    cast(coalesce(o.refunded_orders, 0) as bigint) as refunded_orders
from keys as k
left join clicks as c on k.date_day = c.date_day and k.channel = c.channel and k.source = c.source
left join orders as o on k.date_day = o.date_day and k.channel = o.channel and k.source = o.source
