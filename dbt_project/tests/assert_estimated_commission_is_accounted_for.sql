-- Every fen of estimated commission is settled, pending, voided or carried, exactly.
select *
from {{ ref('fct_commission_estimated_vs_settled') }}
where estimated_fen <> settled_fen + pending_fen + voided_fen + carried_fen
