-- A view, not a table: the BI refresh brings settlement.ledger_mirror in step with the registry
-- after each release, and the marts that read this must see it then, not as of the dbt run. It
-- reads a table of the same DuckDB file, so it names no path.
{{ config(materialized='view') }}
-- What each release booked per (promoter, order line, role) (o2p/ledger_mirror.py): one row per
-- released period and key that moved.
select
    period as release_period,
    promoter_id,
    order_id,
    line_id,
    role,
    entitled_fen,
    previously_booked_fen,
    movement_fen
from {{ source('settlement', 'ledger_mirror') }}
