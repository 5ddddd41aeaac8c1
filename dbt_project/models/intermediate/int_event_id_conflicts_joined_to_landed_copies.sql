-- Each ignored copy of a conflicting event_id with the order, line and refund its landed copy
-- names, and a sentence saying which copy was kept instead (rulebook §1).
select
    x.event_id,
    x.occurred_at_us,
    r.line_id,
    r.refund_id,
    coalesce(o.order_id, r.order_id) as order_id,
    'ignored: the ' || x.landed_table || ' copy at ' || x._topic || '/' || x._partition || '/' || x._offset
    || ' differs from the ' || x.kept_table || ' copy kept at ' || x.kept_topic || '/' || x.kept_partition
    || '/' || x.kept_offset || ' (captured first)' as detail
from {{ ref('stg_warehouse__event_id_conflicts') }} as x
left join {{ ref('stg_landing__orders') }} as o
    on
        x.landed_table = 'orders'
        and x._topic = o._topic
        and x._partition = o._partition
        and x._offset = o._offset
left join {{ ref('stg_landing__refunds') }} as r
    on
        x.landed_table = 'refunds'
        and x._topic = r._topic
        and x._partition = r._partition
        and x._offset = r._offset
