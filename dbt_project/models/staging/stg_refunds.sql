-- One row per refund_id (a refund_id refunds once: its earliest event, ties by event_id).
with events as (
    select *
    from {{ source('landing', 'refunds') }}
    qualify row_number() over (partition by event_id order by _topic, _partition, _offset) = 1
)
select
    refund_id,
    event_id as refund_event_id,
    order_id,
    line_id,
    amount_fen,
    occurred_at_us as refunded_at_us
from events
qualify row_number() over (partition by refund_id order by occurred_at_us, event_id) = 1
