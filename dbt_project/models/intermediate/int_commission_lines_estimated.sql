-- The estimated commission of every (promoter, order line, role) to date (issue #14): what the
-- promoter is shown when the order is paid — §5's commission on the paid amount, under the rules
-- in force at payment, the attribution and promoters.csv as they are now — beside the commission
-- on the net to date (refunds and a cancellation captured so far). Lines of organic orders earn
-- nothing and are left out.
with lines as (
    select
        order_id,
        line_id,
        promoter_id as attributed_promoter_id,
        direct_rate_e4,
        paid_fen,
        net_fen,
        paid_at_us,
        currency
    from {{ ref('int_order_lines_netted_to_date') }}
    where promoter_id is not null
),

judged as (
    {{ commission_roles('lines') }}
)

select
    earner_id as promoter_id,
    order_id,
    line_id,
    role,
    attributed_promoter_id,
    status,
    rate_e4,
    paid_fen,
    net_fen,
    paid_at_us,
    currency,
    case when status = 'ok' then {{ commission_fen('rate_e4', 'paid_fen') }} else 0 end as estimated_fen,
    case when status = 'ok' then {{ commission_fen('rate_e4', 'net_fen') }} else 0 end as entitled_to_date_fen
from judged
