-- One row per order: its earliest order_paid event (ties by smallest event_id); later
-- order_paid events for the same order_id are anomalies, reported by int_order_anomalies.
with paid as (
    select *
    from {{ source('landing', 'orders') }}
    where event_type = 'order_paid'
    qualify row_number() over (partition by event_id order by _topic, _partition, _offset) = 1
)
select
    order_id,
    event_id as order_event_id,
    buyer_id,
    share_id,
    currency,
    occurred_at_us as paid_at_us,
    lines
from paid
qualify row_number() over (partition by order_id order by occurred_at_us, event_id) = 1
