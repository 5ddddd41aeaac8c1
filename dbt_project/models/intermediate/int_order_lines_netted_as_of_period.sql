-- A table, not a view: its rows are as of the last run's end(P), and a view would keep that
-- period's bound as a literal (issue #14).
{{ config(materialized='table') }}
-- Lines eligible before end(P), with net as of end(P) (rulebook §5, §6): refunds and a
-- cancellation count only if they occurred before end(P); net is capped at [0, paid_fen] and
-- the excess of an over-refund is kept as over_refund_fen for the anomaly report.
{% set period_end = var('period_end_us') %}
{% set cancelled = 'coalesce(l.cancelled_at_us < ' ~ period_end ~ ', false)' %}
with refunded as (
    {{ refunded_by_line(before_us=period_end) }}
)

select
    l.*,
    coalesce(r.refunded_fen, 0) as refunded_fen,
    {{ cancelled }} as is_cancelled,
    {{ net_fen('l.paid_fen', 'coalesce(r.refunded_fen, 0)', cancelled) }} as net_fen,
    greatest(coalesce(r.refunded_fen, 0) - l.paid_fen, 0) as over_refund_fen
from {{ ref('int_order_lines_joined_to_rates') }} as l
left join refunded as r on l.order_id = r.order_id and l.line_id = r.line_id
where l.eligible_at_us < {{ period_end }}
