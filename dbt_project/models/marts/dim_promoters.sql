-- The promoters of promoters.csv as the reference asset validated them (rulebook §2): one row per
-- promoter, with tier, upline and the joined / suspended instants in microseconds and as
-- TIMESTAMPTZ. What a promoter earns depends on this file as it is now (rulebook §5).
select
    cast(promoter_id as varchar) as promoter_id,
    cast(upline_id as varchar) as upline_id,
    cast(tier as varchar) as tier,
    cast(buyer_id as varchar) as buyer_id,
    cast(payee_openid is not null as boolean) as has_payee,
    cast(joined_at_us as bigint) as joined_at_us,
    {{ shanghai_time('joined_at_us') }} as joined_at,
    cast(suspended_at_us as bigint) as suspended_at_us,
    {{ shanghai_time('suspended_at_us') }} as suspended_at
from {{ ref('stg_reference__promoters') }}
