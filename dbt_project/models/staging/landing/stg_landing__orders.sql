-- Every landed copy of an order event (o2p.orders.v1), as captured: one row per Kafka record.
-- Deduplicated on event_id in int_order_events_deduplicated (the dedupe needs the
-- event_id conflicts of the warehouse source, and a staging model reads only its source).
select
    event_id,
    event_type,
    order_id,
    buyer_id,
    share_id,
    currency,
    lines,
    occurred_at_us,
    _topic,
    _partition,
    _offset,
    _captured_at_us
from {{ source('landing', 'orders') }}
