-- The Asia/Shanghai calendar (rulebook §0: every day and period is a Shanghai one), one row per
-- day from 2025-01-01 (before the first daily partition) to 2035-12-31, for BI tools to join
-- on and to show days without orders. The bounds are instants (epoch microseconds and
-- TIMESTAMPTZ) of the day's Shanghai midnight, from DuckDB's time zone data, not an offset.
with days as (
    select cast(t.d as date) as date_day
    from range(date '2025-01-01', date '2036-01-01', interval 1 day) as t (d)
),

bounded as (
    select
        date_day,
        timezone('Asia/Shanghai', cast(date_day as timestamp)) as day_start,
        timezone('Asia/Shanghai', cast(date_day + 1 as timestamp)) as day_end
    from days
)

select
    date_day,
    day_start,
    cast(strftime(date_day, '%Y-%m') as varchar) as period,
    cast(year(date_day) as integer) as calendar_year,
    cast(month(date_day) as integer) as calendar_month,
    cast(day(date_day) as integer) as day_of_month,
    cast(isodow(date_day) as integer) as iso_day_of_week,
    cast(weekofyear(date_day) as integer) as iso_week,
    cast(isodow(date_day) >= 6 as boolean) as is_weekend,
    cast(epoch_us(day_start) as bigint) as day_start_us,
    cast(epoch_us(day_end) as bigint) as day_end_us
from bounded
