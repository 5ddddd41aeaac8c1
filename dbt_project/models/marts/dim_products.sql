-- The catalogue of products.csv (rulebook §2): one row per SKU with its product, brand and
-- category, the scopes a commission rule names.
select
    cast(sku_id as varchar) as sku_id,
    cast(product_id as varchar) as product_id,
    cast(brand as varchar) as brand,
    cast(category as varchar) as category
from {{ ref('stg_reference__products') }}
