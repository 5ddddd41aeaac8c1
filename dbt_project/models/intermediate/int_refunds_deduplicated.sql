-- One row per refund_id (a refund_id refunds once: its earliest event, ties by event_id).
with events as (
    {{ dedupe_events(ref('stg_landing__refunds')) }}
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
