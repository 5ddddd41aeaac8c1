select
    period,
    promoter_id,
    order_id,
    line_id,
    role,
    count(*) as n
from {{ ref('fct_commission_entitlements') }}
group by all
having count(*) > 1
