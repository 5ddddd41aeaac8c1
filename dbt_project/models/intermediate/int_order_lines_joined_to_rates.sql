-- The direct commission rate of each line (rulebook §5): among rules in force at the order's
-- paid time whose scope matches, the most specific scope wins (sku > product > brand >
-- category > default), then the latest effective_from. No rule in force: rate 0.
with lines as (
    select n.*, p.product_id, p.brand, p.category
    from {{ ref('int_order_lines_netted_as_of_period') }} as n
    left join {{ ref('stg_reference__products') }} as p on p.sku_id = n.sku_id
),

matches as (
    select
        l.order_id,
        l.line_id,
        r.rule_id,
        r.rate_e4,
        row_number() over (
            partition by l.order_id, l.line_id
            order by
                case r.scope
                    when 'sku' then 1 when 'product' then 2 when 'brand' then 3
                    when 'category' then 4 else 5
                end,
                r.effective_from_us desc
        ) as specificity_rank
    from lines as l
    inner join {{ ref('stg_reference__commission_rules') }} as r
        on r.effective_from_us <= l.paid_at_us
        and (r.effective_to_us is null or l.paid_at_us < r.effective_to_us)
        and (
            (r.scope = 'sku' and r.scope_value = l.sku_id)
            or (r.scope = 'product' and r.scope_value = l.product_id)
            or (r.scope = 'brand' and r.scope_value = l.brand)
            or (r.scope = 'category' and r.scope_value = l.category)
            or r.scope = 'default'
        )
)

select
    l.*,
    m.rule_id,
    coalesce(m.rate_e4, 0) as direct_rate_e4
from lines as l
left join matches as m
    on m.order_id = l.order_id and m.line_id = l.line_id and m.specificity_rank = 1
