{#
  Refunds summed per order line (rulebook §5), those that occurred before `before_us` when it
  is given (end(P) for money), every one captured so far when it is not (to date, for BI).
#}
{% macro refunded_by_line(before_us=none) -%}
    select
        order_id,
        line_id,
        sum(amount_fen) as refunded_fen
    from {{ ref('int_refunds_deduplicated') }}
    {% if before_us is not none %}where refunded_at_us < {{ before_us }}{% endif %}
    group by order_id, line_id
{%- endmacro %}
