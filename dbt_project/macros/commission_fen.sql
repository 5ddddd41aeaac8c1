{#
  round(rate × net) to an integer fen, half up (rulebook §0), in exact integer arithmetic:
  rate is an integer number of 1/10000 (0.1250 → 1250), net is integer fen ≥ 0.
  (rate_e4 × net + 5000) // 10000 is ROUND_HALF_UP for non-negative products.
#}
{% macro commission_fen(rate_e4, net_fen) -%}
    (({{ rate_e4 }})::bigint * ({{ net_fen }})::bigint + 5000) // 10000
{%- endmacro %}
