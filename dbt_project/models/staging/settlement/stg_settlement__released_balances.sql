-- A view, not a table, for the reason stg_settlement__ledger_mirror gives.
{{ config(materialized='view') }}
-- The registry's balances of released periods (copied by the BI refresh, o2p/bi.py): per
-- released period and promoter, what was paid (gross_fen > 0) or carried, and why.
select
    period as release_period,
    promoter_id,
    carried_in_fen,
    returned_fen,
    movement_fen,
    balance_fen,
    gross_fen,
    tax_fen,
    net_fen,
    carried_out_fen,
    carry_reason
from {{ source('settlement', 'released_balances') }}
