-- products.csv: the catalogue a commission rule's scope names (sku, product, brand, category).
select
    sku_id,
    product_id,
    brand,
    category
from {{ source('reference', 'products') }}
