-- One row per order (its earliest order_paid, rulebook §1) with everything captured to date:
-- GMV, attribution, refunds, net and a status. Orders are counted on the day they were paid
-- (Asia/Shanghai); refunds and a cancellation whenever they were captured.
-- status, first that holds:
--   cancelled           an order_cancelled was captured (every line refunded in full, §1)
--   refunded            refunds cover every fen paid (refunded_fen = gmv_fen > 0)
--   partially_refunded  some refund captured
--   confirmed           confirmed_at (§6: the buyer's confirmation, else paid + auto_confirm_days)
--                       has passed at the time the mart was built
--   paid                none of the above yet
with lines as (
    select
        order_id,
        count(*) as line_count,
        sum(paid_fen) as gmv_fen,
        sum(refunded_fen) as refunded_fen,
        sum(net_fen) as net_fen,
        bool_or(is_cancelled) as is_cancelled,
        any_value(buyer_id) as buyer_id,
        any_value(promoter_id) as promoter_id,
        any_value(click_event_id) as click_event_id,
        any_value(attribution_reason) as attribution_reason,
        any_value(paid_at_us) as paid_at_us,
        any_value(confirmed_at_us) as confirmed_at_us,
        any_value(eligible_at_us) as eligible_at_us,
        any_value(cancelled_at_us) as cancelled_at_us,
        any_value(currency) as currency
    from {{ ref('int_order_lines_netted_to_date') }}
    group by order_id
)

select
    cast(l.order_id as varchar) as order_id,
    cast(o.order_event_id as varchar) as order_event_id,
    cast(l.buyer_id as varchar) as buyer_id,
    cast(o.share_id as varchar) as share_id,
    cast(l.paid_at_us as bigint) as paid_at_us,
    {{ shanghai_time('l.paid_at_us') }} as paid_at,
    {{ shanghai_date('l.paid_at_us') }} as paid_date,
    cast(strftime({{ shanghai_date('l.paid_at_us') }}, '%Y-%m') as varchar) as period,
    cast(l.line_count as integer) as line_count,
    cast(l.gmv_fen as bigint) as gmv_fen,
    cast(l.refunded_fen as bigint) as refunded_fen,
    cast(l.net_fen as bigint) as net_fen,
    cast(l.promoter_id as varchar) as promoter_id,
    cast(l.attribution_reason as varchar) as attribution_reason,
    cast(l.click_event_id as varchar) as click_event_id,
    cast(
        case
            when l.is_cancelled then 'cancelled'
            when l.refunded_fen > 0 and l.refunded_fen = l.gmv_fen then 'refunded'
            when l.refunded_fen > 0 then 'partially_refunded'
            when l.confirmed_at_us <= epoch_us(get_current_timestamp()) then 'confirmed'
            else 'paid'
        end as varchar
    ) as status,
    cast(l.confirmed_at_us as bigint) as confirmed_at_us,
    cast(l.eligible_at_us as bigint) as eligible_at_us,
    cast(l.cancelled_at_us as bigint) as cancelled_at_us,
    {{ shanghai_time('l.cancelled_at_us') }} as cancelled_at,
    cast(l.currency as varchar) as currency
from lines as l
inner join {{ ref('int_orders_paid_first') }} as o on l.order_id = o.order_id
