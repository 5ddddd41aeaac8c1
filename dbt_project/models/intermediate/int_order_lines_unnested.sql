-- The lines of each order's counted (earliest) order_paid event, one row per line.
select
    o.order_id,
    l.line.line_id as line_id,
    l.line.sku_id as sku_id,
    l.line.quantity as quantity,
    l.line.unit_price_fen as unit_price_fen,
    l.line.discount_fen as discount_fen,
    l.line.paid_fen as paid_fen,
    o.currency
from {{ ref('int_orders_paid_first') }} as o,
    unnest(o.lines) as l (line)
