select * from {{ source('reference', 'promoters') }}
