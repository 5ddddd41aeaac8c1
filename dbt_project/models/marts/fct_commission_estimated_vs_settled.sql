-- A view, not a table: it reads the registry's releases through settlement.ledger_mirror and
-- settlement.released_balances, which the BI refresh brings in step after each release (and
-- copies this view's rows into the BI copy as a table); a table built by the commission run,
-- before the release, would miss the release it runs in. It reads only tables of the same file.
{{ config(materialized='view') }}
-- Estimated vs settled (issue #14), per promoter and period P (the Asia/Shanghai month the
-- order was paid in): every fen of the commission the promoter was shown when the order was paid
-- (estimated: rulebook §5 on the paid amount) is in exactly one of
--   voided   taken back by refunds and cancellations captured to date (estimate − §5 on the net)
--   pending  owed on the net to date but not yet booked by a release: not yet eligible (§6), or
--            a change since the last release that booked the line (negative: a clawback to come)
--   settled  booked by a release and paid: the promoter was paid (gross > 0) in that release or
--            a later one (paid means nothing is carried, §6)
--   carried  booked by a release and still in the promoter's carried balance (below threshold,
--            negative, suspended, no payee, unknown promoter)
-- so estimated = voided + pending + settled + carried exactly, per row (a dbt test, and
-- tests/integration/test_bi.py on the golden months by hand). Booked amounts are the ledger's
-- movements, attributed to the release that booked them; their sum per line is what the latest
-- release booked for it. A returned transfer (§10) is counted as settled here.
with estimates as (
    select
        promoter_id,
        order_id,
        line_id,
        role,
        estimated_fen,
        entitled_to_date_fen
    from {{ ref('int_commission_lines_estimated') }}
),

last_paid as (
    select
        promoter_id,
        max(release_period) as last_paid_release
    from {{ ref('stg_settlement__released_balances') }}
    where gross_fen > 0
    group by promoter_id
),

booked as (
    select
        b.promoter_id,
        b.order_id,
        b.line_id,
        b.role,
        sum(b.movement_fen) as booked_fen,
        sum(b.movement_fen) filter (where b.release_period <= p.last_paid_release) as settled_fen
    from {{ ref('stg_settlement__ledger_mirror') }} as b
    left join last_paid as p on b.promoter_id = p.promoter_id
    group by b.promoter_id, b.order_id, b.line_id, b.role
),

lines as (
    select
        coalesce(e.promoter_id, b.promoter_id) as promoter_id,
        coalesce(e.order_id, b.order_id) as order_id,
        coalesce(e.estimated_fen, 0) as estimated_fen,
        coalesce(e.estimated_fen, 0) - coalesce(e.entitled_to_date_fen, 0) as voided_fen,
        coalesce(e.entitled_to_date_fen, 0) - coalesce(b.booked_fen, 0) as pending_fen,
        coalesce(b.settled_fen, 0) as settled_fen,
        coalesce(b.booked_fen, 0) - coalesce(b.settled_fen, 0) as carried_fen
    from estimates as e
    full outer join booked as b
        on
            e.promoter_id = b.promoter_id
            and e.order_id = b.order_id
            and e.line_id = b.line_id
            and e.role = b.role
)

select
    cast(strftime({{ shanghai_date('o.paid_at_us') }}, '%Y-%m') as varchar) as period,
    cast(l.promoter_id as varchar) as promoter_id,
    cast(sum(l.estimated_fen) as bigint) as estimated_fen,
    cast(sum(l.settled_fen) as bigint) as settled_fen,
    cast(sum(l.pending_fen) as bigint) as pending_fen,
    cast(sum(l.voided_fen) as bigint) as voided_fen,
    cast(sum(l.carried_fen) as bigint) as carried_fen,
    cast('CNY' as varchar) as currency
from lines as l
left join {{ ref('int_orders_paid_first') }} as o on l.order_id = o.order_id
group by all
