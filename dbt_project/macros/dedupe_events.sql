{#
  One row per event_id of landed events (rulebook §1), the one dedupe of every model that reads
  the landing zone (`relation`: a landing staging model):
  - copies that conflict with an earlier copy of their event_id (same id, different content) are
    dropped: pipelines/lib/event_ids.py names them in stg_warehouse__event_id_conflicts;
  - of the copies left (a producer's retries, all alike), the first captured is kept, in the
    order of pipelines.lib.event_ids.CAPTURE_ORDER (a unit test holds the two the same).
#}
{% macro dedupe_events(relation) %}
    select e.*
    from {{ relation }} as e
    anti join {{ ref('stg_warehouse__event_id_conflicts') }} as x using (_topic, _partition, _offset)
    qualify row_number() over (
        partition by e.event_id order by e._captured_at_us, e._topic, e._partition, e._offset
    ) = 1
{% endmacro %}
