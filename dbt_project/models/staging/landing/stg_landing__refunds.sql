-- Every landed copy of a refund event (o2p.refunds.v1), as captured: one row per Kafka record.
-- Deduplicated in int_refunds_deduplicated.
select
    event_id,
    refund_id,
    order_id,
    line_id,
    amount_fen,
    occurred_at_us,
    _topic,
    _partition,
    _offset,
    _captured_at_us
from {{ source('landing', 'refunds') }}
