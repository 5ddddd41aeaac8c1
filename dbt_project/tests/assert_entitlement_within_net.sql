-- Commission is never above the line's net: a rate above 1 reaching the SQL fails here, within
-- dbt build. The other money ranges (entitled >= 0, net <= paid, rates in [0, 1]) are the GX
-- commission suite's (expectations/suites.py).
select *
from {{ ref('fct_commission_entitlements') }}
where entitled_fen > net_fen
