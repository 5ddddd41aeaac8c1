-- fct_commission_movements' grain: one row per (period, promoter, order, line, role).
select
    period,
    promoter_id,
    order_id,
    line_id,
    role,
    count(*) as n
from {{ ref('fct_commission_movements') }}
group by all
having count(*) > 1
