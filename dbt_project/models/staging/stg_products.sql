select * from {{ source('reference', 'products') }}
