-- order_confirmed and order_cancelled, one row per event_id.
select
    event_id,
    event_type,
    order_id,
    occurred_at_us
from (
    {{ dedupe_events(source('landing', 'orders'), "event_type in ('order_confirmed', 'order_cancelled')") }}
)
