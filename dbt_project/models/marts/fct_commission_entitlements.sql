{{
  config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{% if is_incremental() %}delete from {{ this }} where period = '{{ var('period') }}'{% endif %}"
  )
}}
-- entitled(p, l, P) for every (promoter, line, role) as of end(P) (rulebook §5-§6).
-- One partition per period: a run replaces that period's rows, never another's.
-- attributed_promoter_id: whom the order is attributed to (rulebook §4); earner_id: who is owed
-- on this row (that promoter for role direct, their upline for role override), the mart's promoter_id.
with lines as (
    select
        order_id,
        line_id,
        promoter_id as attributed_promoter_id,
        click_event_id,
        attribution_reason,
        rule_id,
        direct_rate_e4,
        paid_fen,
        refunded_fen,
        net_fen,
        over_refund_fen,
        paid_at_us,
        eligible_at_us,
        currency
    from {{ ref('int_order_lines_netted_as_of_period') }}
    where promoter_id is not null
),

judged as (
    {{ commission_roles('lines') }}
)

select
    cast('{{ var("period") }}' as varchar) as period,
    cast(earner_id as varchar) as promoter_id,
    cast(order_id as varchar) as order_id,
    cast(line_id as varchar) as line_id,
    cast(role as varchar) as role,
    cast(attributed_promoter_id as varchar) as attributed_promoter_id,
    cast(click_event_id as varchar) as click_event_id,
    cast(attribution_reason as varchar) as attribution_reason,
    cast(rule_id as varchar) as rule_id,
    cast(rate_e4 as bigint) as rate_e4,
    cast(paid_fen as bigint) as paid_fen,
    cast(refunded_fen as bigint) as refunded_fen,
    cast(net_fen as bigint) as net_fen,
    cast(over_refund_fen as bigint) as over_refund_fen,
    cast(paid_at_us as bigint) as paid_at_us,
    cast(eligible_at_us as bigint) as eligible_at_us,
    cast(status as varchar) as status,
    cast(case when status = 'ok' then {{ commission_fen('rate_e4', 'net_fen') }} else 0 end as bigint) as entitled_fen,
    cast(currency as varchar) as currency
from judged
