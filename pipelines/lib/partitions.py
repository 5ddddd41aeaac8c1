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
# Monthly keys are the rulebook's periods, YYYY-MM, in the UI as in the CLI, files and registry.
monthly = MonthlyPartitionsDefinition(start_date=START[:7], timezone=TIMEZONE, end_offset=1, fmt="%Y-%m")


def window_dates(start_key: str, end_key: str, before: int = 0, after: int = 0) -> list[str]:
    """Daily partition keys from start_key − before days to end_key + after days, inclusive."""
    first = date.fromisoformat(start_key) - timedelta(days=before)
    last = date.fromisoformat(end_key) + timedelta(days=after)
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


# Landed days at most this far apart are attributed in one run (an empty day in a Spark job costs
# next to nothing; another run costs its start-up): a week, the attribution lookback's order.
JOIN_GAP_DAYS = 7


def run_ranges(days: list[str], today: str) -> tuple[list[tuple[str, str]], list[str]]:
    """The landed days a run may attribute, as ranges (one Spark run each) that never bridge more
    than JOIN_GAP_DAYS without data, and the days it must skip: before START or after tomorrow
    (the daily partitions' end), which no event can have since capture dead-letters events from
    the future (rulebook §1). A click dated 2099 once made `o2p run` attribute 26,000 empty days."""
    last_ok = (date.fromisoformat(today) + timedelta(days=1)).isoformat()
    ok = sorted(d for d in set(days) if START <= d <= last_ok)
    skipped = sorted(d for d in set(days) if not START <= d <= last_ok)
    ranges: list[tuple[str, str]] = []
    for d in ok:
        if ranges and date.fromisoformat(d) - date.fromisoformat(ranges[-1][1]) <= timedelta(days=JOIN_GAP_DAYS + 1):
            ranges[-1] = (ranges[-1][0], d)
        else:
            ranges.append((d, d))
    return ranges, skipped


def period_dbt_vars(period: str) -> dict:
    """A monthly partition key (YYYY-MM-01 or YYYY-MM) → the dbt vars of that period."""
    p = period[:7]
    return {
        "period": p,
        "period_start_us": period_start_us(p),
        "period_end_us": period_end_us(p),
        "next_period": next_period(p),
    }


def affected_range(click_dates: set[str], order_dates: set[str], lookback_days: int,
                   model: str = "last_click", last_key: str | None = None) -> tuple[str, str] | None:
    """The daily partitions that new landed files make stale, as one range (one Spark run).

    A click of day X changes the flood counts of days X−1..X+1 (the ±60 s window crosses
    midnight), and so the attribution of orders up to lookback_days after the last of them:
    X−1..X+1+lookback. An order of day Y changes day Y only. Under `wechat_lock` a day's locks
    depend on every earlier day, so the range runs to the newest day (`last_key`).
    """
    starts, ends = [], []
    for x in click_dates:
        starts.append(window_dates(x, x, 1, 0)[0])
        ends.append(window_dates(x, x, 0, 1 + lookback_days)[-1])
    for y in order_dates:
        starts.append(y)
        ends.append(y)
    if not starts:
        return None
    end = max(ends)
    if model == "wechat_lock" and last_key:
        end = max(end, last_key)
    if last_key:
        end = min(end, last_key)
    return max(min(starts), START), max(end, min(starts))
