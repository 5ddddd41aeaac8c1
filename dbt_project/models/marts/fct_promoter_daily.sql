-- Per Asia/Shanghai day and promoter: the promoter's clicks (valid, bot, flood: a click can be
-- both, rulebook §3), the orders attributed to them that were paid that day with their GMV, and
-- the commission they were shown that day: the estimate (§5 on the paid amount) of every line
-- paid that day that the promoter earns on, directly or as upline (so an upline's override is
-- in the upline's row, on the day the order below was paid). Every column sums across days
-- and promoters. Clicks without a promoter (none pass the contract) would be under null.
with clicks as (
    select
        date_day,
        promoter_id,
        sum(clicks) as clicks,
        sum(valid_clicks) as valid_clicks,
        sum(bot_clicks) as bot_clicks,
        sum(flood_clicks) as flood_clicks
    from {{ ref('int_clicks_aggregated_to_days') }}
    group by all
),

orders as (
    select
        paid_date as date_day,
        promoter_id,
        count(*) as orders,
        sum(gmv_fen) as gmv_fen
    from {{ ref('fct_orders') }}
    where promoter_id is not null
    group by all
),

commission as (
    select
        {{ shanghai_date('paid_at_us') }} as date_day,
        promoter_id,
        sum(estimated_fen) as estimated_commission_fen
    from {{ ref('int_commission_lines_estimated') }}
    group by all
),

days as (
    select
        date_day,
        promoter_id
    from clicks
    union
    select
        date_day,
        promoter_id
    from orders
    union
    select
        date_day,
        promoter_id
    from commission
)

select
    d.date_day,
    cast(d.promoter_id as varchar) as promoter_id,
    cast(coalesce(c.clicks, 0) as bigint) as clicks,
    cast(coalesce(c.valid_clicks, 0) as bigint) as valid_clicks,
    cast(coalesce(c.bot_clicks, 0) as bigint) as bot_clicks,
    cast(coalesce(c.flood_clicks, 0) as bigint) as flood_clicks,
    cast(coalesce(o.orders, 0) as bigint) as orders,
    cast(coalesce(o.gmv_fen, 0) as bigint) as gmv_fen,
    cast(coalesce(m.estimated_commission_fen, 0) as bigint) as estimated_commission_fen,
    cast('CNY' as varchar) as currency
from days as d
left join clicks as c on d.date_day = c.date_day and d.promoter_id = c.promoter_id
left join orders as o on d.date_day = o.date_day and d.promoter_id = o.promoter_id
left join commission as m on d.date_day = m.date_day and d.promoter_id = m.promoter_id
