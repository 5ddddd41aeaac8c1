{#
  A model's grain: at most one row per combination of `columns` (the failing rows are the
  combinations found more than once, with their count).
#}
{% test one_row_per(model, columns) %}
    select
        {{ columns | join(', ') }},
        count(*) as n
    from {{ model }}
    group by all
    having count(*) > 1
{% endtest %}
