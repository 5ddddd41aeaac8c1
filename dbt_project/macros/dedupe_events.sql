{#
  One row per event_id from a landing table (rulebook §1), the one dedupe of every staging model:
  - copies that conflict with an earlier copy of their event_id (same id, different content) are
    dropped: pipelines/lib/event_ids.py names them in the event_id_conflicts source;
  - of the copies left (a producer's retries, all alike), the first captured is kept, in the
    order of pipelines.lib.event_ids.CAPTURE_ORDER (a unit test holds the two the same).
#}
{% macro dedupe_events(relation, where=none) %}
    select e.*
    from {{ relation }} as e
    anti join {{ source('warehouse', 'event_id_conflicts') }} as x using (_topic, _partition, _offset)
    {% if where %}where {{ where }}{% endif %}
    qualify row_number() over (
        partition by e.event_id order by e._captured_at_us, e._topic, e._partition, e._offset
    ) = 1
{% endmacro %}
