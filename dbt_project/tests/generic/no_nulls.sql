{#
  Not null, for several columns of a model or source in one query (one scan instead of one per
  column, as dbt's own not_null would run): the failing rows are those with a null in any of
  `columns`, with those columns.
#}
{% test no_nulls(model, columns) %}
    select {{ columns | join(', ') }}
    from {{ model }}
    where {% for c in columns %}{{ c }} is null{% if not loop.last %} or {% endif %}{% endfor %}
{% endtest %}
