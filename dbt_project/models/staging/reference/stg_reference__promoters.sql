-- promoters.csv, validated and typed by the reference asset (o2p/reference.py).
select
    promoter_id,
    upline_id,
    tier,
    buyer_id,
    payee_openid,
    payee_name,
    joined_at_us,
    suspended_at_us
from {{ source('reference', 'promoters') }}
