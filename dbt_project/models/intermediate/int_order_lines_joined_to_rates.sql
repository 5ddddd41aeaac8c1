-- The direct commission rate of each line, of every period (rulebook §5; it depends only on the
-- line's SKU and paid time, so it comes before netting): among rules in force at the order's
-- paid time whose scope matches, the most specific scope wins (sku > product > brand >
-- category > default), then the latest effective_from. No rule in force: rate 0.
with lines as (
    select
        n.*,
        p.product_id,
        p.brand,
        p.category
    from {{ ref('int_order_lines_joined_to_attribution') }} as n
    left join {{ ref('stg_reference__products') }} as p on n.sku_id = p.sku_id
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
        on
            l.paid_at_us >= r.effective_from_us
            and (r.effective_to_us is null or l.paid_at_us < r.effective_to_us)
            and (
                (r.scope = 'sku' and l.sku_id = r.scope_value)
                or (r.scope = 'product' and l.product_id = r.scope_value)
                or (r.scope = 'brand' and l.brand = r.scope_value)
                or (r.scope = 'category' and l.category = r.scope_value)
                or r.scope = 'default'
            )
)

select
    l.*,
    m.rule_id,
    coalesce(m.rate_e4, 0) as direct_rate_e4
from lines as l
left join matches as m
    on l.order_id = m.order_id and l.line_id = m.line_id and m.specificity_rank = 1
