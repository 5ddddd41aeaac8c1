-- Each ignored copy of a conflicting event_id with the order, line and refund its landed copy
-- names, and a sentence saying which copy was kept instead (rulebook §1).
select
    x.event_id,
    x.occurred_at_us,
    coalesce(o.order_id, r.order_id) as order_id,
    r.line_id,
    r.refund_id,
    'ignored: the ' || x.landed_table || ' copy at ' || x._topic || '/' || x._partition || '/' || x._offset
    || ' differs from the ' || x.kept_table || ' copy kept at ' || x.kept_topic || '/' || x.kept_partition
    || '/' || x.kept_offset || ' (captured first)' as detail
from {{ ref('stg_warehouse__event_id_conflicts') }} as x
left join {{ ref('stg_landing__orders') }} as o
    on
        x.landed_table = 'orders'
        and o._topic = x._topic
        and o._partition = x._partition
        and o._offset = x._offset
left join {{ ref('stg_landing__refunds') }} as r
    on
        x.landed_table = 'refunds'
        and r._topic = x._topic
        and r._partition = x._partition
        and r._offset = x._offset
