"""Which periods and days may be worked on now (rulebook §1 and §6), for the CLI, the assets and
the daemon alike: refused before any work, with the rulebook's reason."""

from __future__ import annotations

import time
from datetime import timedelta

from o2p.config import Config
from o2p.errors import InputError
from o2p.layout import landed_days
from o2p.registry import Registry
from o2p.timeutil import next_period, period_end_us, previous_period, shanghai_date

US_PER_SECOND = 1_000_000


def first_period(cfg: Config, registry: Registry) -> str | None:
    released = registry.released()
    if released:
        return released[0]["period"]
    dates = landed_days(cfg.landing_path)
    return dates[0][:7] if dates else None


def check_order(cfg: Config, registry: Registry, period: str) -> None:
    """Refuse to settle P before it has ended, or unless P−1 is released (or P is the first)."""
    if period_end_us(period) > time.time_ns() // 1000:
        raise InputError(f"period {period} has not ended yet (it ends {next_period(period)}-01T00:00:00+08:00); "
                         "a month is released once it is over")
    first = first_period(cfg, registry)
    if first is None:
        raise InputError(f"period {period}: nothing has been captured yet")
    if period < first:
        raise InputError(f"period {period} is before the first period {first}")
    later = [b["period"] for b in registry.released() if b["period"] > period]
    if later:
        raise InputError(f"period {period} cannot be released after the later period {later[-1]}")
    if period > first:
        prev = registry.batch(previous_period(period))
        if prev is None or prev["status"] != "released":
            raise InputError(
                f"period {period} cannot be released before {previous_period(period)}: release "
                f"{previous_period(period)} first (periods are released in order, starting at {first})"
            )


def refuse_future_days(cfg: Config, first: str, last: str, now_us: int | None = None) -> None:
    """A day that has not begun (Asia/Shanghai, allowing the producers' clock skew that capture
    allows) can hold no event: capture dead-letters events from the future (rulebook §1)."""
    now_us = time.time_ns() // 1000 if now_us is None else now_us
    latest = shanghai_date(now_us + cfg.quality.max_future_seconds * US_PER_SECOND).isoformat()
    if last > latest:
        after = (shanghai_date(now_us + cfg.quality.max_future_seconds * US_PER_SECOND) + timedelta(days=1)).isoformat()
        raise InputError(f"days {max(first, after)}..{last} have not begun yet (Asia/Shanghai): an event dated "
                         f"after {latest} is a dead letter (occurred_in_future, quality.max_future_seconds = "
                         f"{cfg.quality.max_future_seconds}), so there is nothing to attribute; run it once the day is here")
