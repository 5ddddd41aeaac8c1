-- A table (it reads Parquet through the ephemeral staging model, so a view would keep the
-- absolute glob): clicks counted per Asia/Shanghai day, promoter, channel and source, the one
-- scan of the validated clicks that fct_promoter_daily and fct_funnel_daily aggregate further.
{{ config(materialized='table') }}
select
    {{ shanghai_date('occurred_at_us') }} as date_day,
    promoter_id,
    channel,
    source,
    count(*) as clicks,
    count(*) filter (where is_valid) as valid_clicks,
    count(*) filter (where list_contains(string_split(invalid_reasons, ','), 'ua_bot')) as bot_clicks,
    count(*) filter (where list_contains(string_split(invalid_reasons, ','), 'flood')) as flood_clicks
from {{ ref('stg_warehouse__clicks_validated') }}
group by all
