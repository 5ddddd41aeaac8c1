-- Commission movements (issue #14): what each period changed of each (promoter, line, role)'s
-- entitlement, against the previous period computed in fct_commission_entitlements. That mart
-- is a cumulative snapshot per period (a line eligible in August is in every later period
-- too), so summing it across periods double-counts; this one sums: for each key,
-- sum(movement_fen) over periods up to P = entitled_fen as of P.
-- A key present in the previous period and gone from P (its order re-attributed) moves back to 0.
-- Rows whose movement is 0 are left out.
with entitlements as (
    select
        period,
        promoter_id,
        order_id,
        line_id,
        role,
        attributed_promoter_id,
        attribution_reason,
        entitled_fen,
        paid_at_us,
        currency
    from {{ ref('fct_commission_entitlements') }}
),

periods as (
    select
        period,
        lag(period) over (order by period) as previous_period
    from (select distinct period from entitlements)
),

moved as (
    -- each key of P or of the period before it; the current row's attributes where it has one
    select
        p.period,
        p.previous_period,
        e.promoter_id,
        e.order_id,
        e.line_id,
        e.role,
        arg_max(e.attributed_promoter_id, e.period) as attributed_promoter_id,
        arg_max(e.attribution_reason, e.period) as attribution_reason,
        arg_max(e.paid_at_us, e.period) as paid_at_us,
        arg_max(e.currency, e.period) as currency,
        sum(case when e.period = p.period then e.entitled_fen else 0 end) as entitled_fen,
        sum(case when e.period = p.previous_period then e.entitled_fen else 0 end) as previously_entitled_fen
    from periods as p
    inner join entitlements as e on p.period = e.period or p.previous_period = e.period
    group by p.period, p.previous_period, e.promoter_id, e.order_id, e.line_id, e.role
)

select
    cast(period as varchar) as period,
    cast(previous_period as varchar) as previous_period,
    cast(promoter_id as varchar) as promoter_id,
    cast(order_id as varchar) as order_id,
    cast(line_id as varchar) as line_id,
    cast(role as varchar) as role,
    cast(attributed_promoter_id as varchar) as attributed_promoter_id,
    cast(attribution_reason as varchar) as attribution_reason,
    cast(entitled_fen as bigint) as entitled_fen,
    cast(previously_entitled_fen as bigint) as previously_entitled_fen,
    cast(entitled_fen - previously_entitled_fen as bigint) as movement_fen,
    cast(paid_at_us as bigint) as paid_at_us,
    {{ shanghai_time('paid_at_us') }} as paid_at,
    cast(currency as varchar) as currency
from moved
where entitled_fen <> previously_entitled_fen
