"""The one partition contract (style.md §5): daily Asia/Shanghai partitions for events, monthly
for money, and the pure helpers that turn a partition window into dates and dbt vars."""

from __future__ import annotations

from datetime import date, timedelta

from dagster import DailyPartitionsDefinition, MonthlyPartitionsDefinition

from o2p.timeutil import next_period, period_end_us, period_start_us

TIMEZONE = "Asia/Shanghai"
# The first day the pipeline knows about; partitions before it do not exist.
START = "2025-10-01"

daily = DailyPartitionsDefinition(start_date=START, timezone=TIMEZONE, end_offset=1)
monthly = MonthlyPartitionsDefinition(start_date=START, timezone=TIMEZONE, end_offset=1)


def window_dates(start_key: str, end_key: str, before: int = 0, after: int = 0) -> list[str]:
    """Daily partition keys from start_key − before days to end_key + after days, inclusive."""
    first = date.fromisoformat(start_key) - timedelta(days=before)
    last = date.fromisoformat(end_key) + timedelta(days=after)
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def period_dbt_vars(period: str) -> dict:
    """A monthly partition key (YYYY-MM-01 or YYYY-MM) → the dbt vars of that period."""
    p = period[:7]
    return {
        "period": p,
        "period_start_us": period_start_us(p),
        "period_end_us": period_end_us(p),
        "next_period": next_period(p),
    }
