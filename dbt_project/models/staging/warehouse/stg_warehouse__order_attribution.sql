-- Spark's attribution (asset attribution/order_attribution): one row per landed order_paid event.
select
    order_id,
    order_event_id,
    promoter_id,
    click_event_id,
    attribution_reason,
    candidates_considered,
    model as attribution_model
from {{ source('warehouse', 'order_attribution') }}
