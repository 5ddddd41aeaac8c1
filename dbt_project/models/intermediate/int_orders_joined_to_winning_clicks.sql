-- A table, for the reason int_clicks_aggregated_to_days gives: each attributed order with the
-- channel and source (storefront / bot) of the click that won its attribution (rulebook §4), for
-- the funnel. Only the winning clicks are read from the Parquet (a semi-join on their ids).
{{ config(materialized='table') }}
with attributed as (
    select
        o.order_id,
        a.click_event_id
    from {{ ref('int_orders_paid_first') }} as o
    inner join {{ ref('stg_warehouse__order_attribution') }} as a on o.order_event_id = a.order_event_id
    where a.click_event_id is not null
)

select
    a.order_id,
    a.click_event_id,
    c.channel,
    c.source
from attributed as a
inner join {{ ref('stg_warehouse__clicks_validated') }} as c on a.click_event_id = c.event_id
