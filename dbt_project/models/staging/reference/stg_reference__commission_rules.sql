-- commission_rules.csv; rate_e4 is the rate in 1/10000 (0.1250 -> 1250).
select
    rule_id,
    scope,
    scope_value,
    rate_e4,
    effective_from_us,
    effective_to_us
from {{ source('reference', 'commission_rules') }}
