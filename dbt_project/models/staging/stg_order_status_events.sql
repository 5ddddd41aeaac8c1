-- order_confirmed and order_cancelled, one row per event_id.
select
    event_id,
    event_type,
    order_id,
    occurred_at_us
from {{ source('landing', 'orders') }}
where event_type in ('order_confirmed', 'order_cancelled')
qualify row_number() over (partition by event_id order by _topic, _partition, _offset) = 1
