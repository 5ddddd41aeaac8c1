-- The landed copies of an event_id that differ from the copy captured first
-- (pipelines/lib/event_ids.py): read by the dedupe (to drop them) and reported as anomalies.
select
    event_id,
    landed_table,
    occurred_at_us,
    _topic,
    _partition,
    _offset,
    kept_table,
    kept_topic,
    kept_partition,
    kept_offset
from {{ source('warehouse', 'event_id_conflicts') }}
