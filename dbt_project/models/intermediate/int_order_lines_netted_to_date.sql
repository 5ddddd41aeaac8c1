-- Every order line with what it has become to date (issue #14, for people): every refund and a
-- cancellation captured so far count, whatever the period (rulebook §5's net, with no end(P)).
-- Net is the net_fen macro's, as in int_order_lines_netted_as_of_period; that model, not this
-- one, is what money is paid on.
with refunded as (
    {{ refunded_by_line() }}
)

select
    l.*,
    least(coalesce(r.refunded_fen, 0), l.paid_fen) as refunded_fen,
    l.cancelled_at_us is not null as is_cancelled,
    {{ net_fen('l.paid_fen', 'coalesce(r.refunded_fen, 0)', 'l.cancelled_at_us is not null') }} as net_fen
from {{ ref('int_order_lines_joined_to_rates') }} as l
left join refunded as r on l.order_id = r.order_id and l.line_id = r.line_id
