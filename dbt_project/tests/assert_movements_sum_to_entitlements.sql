-- The identity that makes fct_commission_movements summable: for every period P and key, the
-- movements of the periods up to P add up to the entitlement as of P (0 when the key is gone).
with running as (
    select
        p.period,
        m.promoter_id,
        m.order_id,
        m.line_id,
        m.role,
        sum(m.movement_fen) as moved_fen
    from (select distinct period from {{ ref('fct_commission_entitlements') }}) as p
    inner join {{ ref('fct_commission_movements') }} as m on p.period >= m.period
    group by all
)

select
    r.moved_fen,
    e.entitled_fen,
    coalesce(r.period, e.period) as period,
    coalesce(r.promoter_id, e.promoter_id) as promoter_id,
    coalesce(r.order_id, e.order_id) as order_id,
    coalesce(r.line_id, e.line_id) as line_id,
    coalesce(r.role, e.role) as role
from running as r
full outer join {{ ref('fct_commission_entitlements') }} as e
    on
        r.period = e.period
        and r.promoter_id = e.promoter_id
        and r.order_id = e.order_id
        and r.line_id = e.line_id
        and r.role = e.role
where coalesce(r.moved_fen, 0) <> coalesce(e.entitled_fen, 0)
