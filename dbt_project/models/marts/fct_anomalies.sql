{{
  config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{% if is_incremental() %}delete from {{ this }} where period = '{{ var('period') }}'{% endif %}"
  )
}}
-- What the rulebook says must be reported rather than paid, as of end(P) (§1, §5):
--   event_id_conflict     a copy of an event_id whose content differs from the copy captured first (ignored)
--   duplicate_order_paid  a later order_paid of an order_id already paid (the earliest counts)
--   over_refund           refunds on a line above its paid_fen (net is capped at 0; the excess is here)
--   held_refund           a refund whose order or line has not been captured: held until it is
--   unknown_promoter      commission earned by a promoter (or upline) missing from promoters.csv
{% set period_end = var('period_end_us') %}
with paid_events as (
    select *
    from {{ ref('int_order_events_deduplicated') }}
    where event_type = 'order_paid' and occurred_at_us < {{ period_end }}
),

conflicts as (
    select
        'event_id_conflict' as kind,
        order_id,
        line_id,
        cast(null as varchar) as promoter_id,
        event_id,
        refund_id,
        cast(null as bigint) as amount_fen,
        detail
    from {{ ref('int_event_id_conflicts_joined_to_landed_copies') }}
    where occurred_at_us < {{ period_end }}
),

duplicates as (
    select
        'duplicate_order_paid' as kind,
        d.order_id,
        cast(null as varchar) as line_id,
        cast(null as varchar) as promoter_id,
        d.event_id,
        cast(null as varchar) as refund_id,
        cast(null as bigint) as amount_fen,
        'counted once: event ' || k.order_event_id || ' paid it first' as detail
    from paid_events as d
    inner join {{ ref('int_orders_paid_first') }} as k on d.order_id = k.order_id
    where d.event_id <> k.order_event_id
),

over_refunds as (
    select
        'over_refund' as kind,
        order_id,
        line_id,
        cast(null as varchar) as promoter_id,
        cast(null as varchar) as event_id,
        cast(null as varchar) as refund_id,
        over_refund_fen as amount_fen,
        'refunded ' || refunded_fen || ' fen of ' || paid_fen || ' paid' as detail
    from {{ ref('int_order_lines_netted_as_of_period') }}
    where over_refund_fen > 0
),

held as (
    select
        'held_refund' as kind,
        r.order_id,
        r.line_id,
        cast(null as varchar) as promoter_id,
        r.refund_event_id as event_id,
        r.refund_id,
        r.amount_fen,
        case when o.order_id is null then 'order not captured yet' else 'order has no such line' end as detail
    from {{ ref('int_refunds_deduplicated') }} as r
    left join {{ ref('int_orders_paid_first') }} as o on r.order_id = o.order_id
    left join {{ ref('int_order_lines_unnested') }} as l on r.order_id = l.order_id and r.line_id = l.line_id
    where r.refunded_at_us < {{ period_end }} and l.line_id is null
),

unknown as (
    select
        'unknown_promoter' as kind,
        order_id,
        line_id,
        promoter_id,
        cast(null as varchar) as event_id,
        cast(null as varchar) as refund_id,
        {{ commission_fen('rate_e4', 'net_fen') }} as amount_fen,
        role || ' commission withheld until promoters.csv names ' || promoter_id as detail
    from {{ ref('fct_commission_entitlements') }}
    where period = '{{ var("period") }}' and status = 'unknown_promoter'
)

select
    cast('{{ var("period") }}' as varchar) as period,
    cast(kind as varchar) as kind,
    cast(order_id as varchar) as order_id,
    cast(line_id as varchar) as line_id,
    cast(promoter_id as varchar) as promoter_id,
    cast(event_id as varchar) as event_id,
    cast(refund_id as varchar) as refund_id,
    cast(amount_fen as bigint) as amount_fen,
    cast(detail as varchar) as detail
from (
    select * from duplicates
    union all
    select * from conflicts
    union all
    select * from over_refunds
    union all
    select * from held
    union all
    select * from unknown
)
