-- One row per order: its earliest order_paid event (ties by smallest event_id); later
-- order_paid events for the same order_id are anomalies, reported by fct_anomalies.
select
    order_id,
    event_id as order_event_id,
    buyer_id,
    share_id,
    currency,
    occurred_at_us as paid_at_us,
    lines
from {{ ref('int_order_events_deduplicated') }}
where event_type = 'order_paid'
qualify row_number() over (partition by order_id order by occurred_at_us, event_id) = 1
