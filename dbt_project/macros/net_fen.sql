{#
  A line's net (rulebook §5): what the buyer paid less what was refunded, never below 0, and 0
  once the order is cancelled. The one place this rule is written: the money's model
  (int_order_lines_netted_as_of_period, as of end(P)) and the BI's (int_order_lines_netted_to_date,
  to date) both call it.
#}
{% macro net_fen(paid_fen, refunded_fen, is_cancelled) -%}
    case when {{ is_cancelled }} then 0 else greatest({{ paid_fen }} - {{ refunded_fen }}, 0) end
{%- endmacro %}
