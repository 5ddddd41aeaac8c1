-- Commission is never negative and never above the line's net (rates are in [0, 1]).
select *
from {{ ref('fct_commission_entitlements') }}
where entitled_fen < 0 or entitled_fen > net_fen or net_fen < 0 or net_fen > paid_fen
