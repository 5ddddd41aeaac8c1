select * from {{ source('reference', 'commission_rules') }}
