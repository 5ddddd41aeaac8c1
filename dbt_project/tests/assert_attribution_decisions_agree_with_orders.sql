-- The trace is the decision, not a second opinion: for each order of fct_orders that has trace
-- rows, its one `won` row is the attributed click and promoter, and an organic order has none
-- (failing rows: the orders where they differ). An order without trace rows is not failed: days
-- attributed before the trace existed get theirs when they are attributed again.
with won as (
    select
        order_id,
        count(*) filter (where outcome = 'won') as won_rows,
        any_value(click_event_id) filter (where outcome = 'won') as click_event_id,
        any_value(promoter_id) filter (where outcome = 'won') as promoter_id
    from {{ ref('fct_attribution_decisions') }}
    group by order_id
)

select
    o.order_id,
    o.click_event_id as attributed_click,
    w.click_event_id as trace_click,
    w.won_rows
from {{ ref('fct_orders') }} as o
inner join won as w on o.order_id = w.order_id
where
    w.won_rows > 1
    or o.click_event_id is distinct from w.click_event_id
    or o.promoter_id is distinct from w.promoter_id
