"""Instants and calendar boundaries (rulebook §0: months and days in Asia/Shanghai)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")
US_PER_SECOND = 1_000_000
US_PER_DAY = 86_400 * US_PER_SECOND
# Asia/Shanghai is UTC+8 all year (no daylight saving since 1991): the fixed offset lets hot
# paths and SQL find a day by arithmetic (capture refuses years outside 2000-2100).
SHANGHAI_OFFSET_US = 8 * 3600 * US_PER_SECOND
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# RFC 3339 date-time (section 5.6) with its offset; [0-9], not \\d, which also matches other
# scripts' digits. Fractions beyond microseconds are truncated (the rulebook compares instants
# at microsecond precision).
RFC3339 = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
_RFC3339 = re.compile(RFC3339)
_NAIVE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?$")


def parse_rfc3339(text: str) -> datetime:
    """Parse an RFC 3339 timestamp that carries an offset; naive timestamps are refused."""
    if not isinstance(text, str) or not _RFC3339.match(text):
        if isinstance(text, str) and _NAIVE.match(text):
            raise ValueError(f"{text!r} has no UTC offset")
        raise ValueError(f"{text!r} is not an RFC 3339 timestamp with an offset")
    t = text[:-1] + "+00:00" if text[-1] in "Zz" else text
    return datetime.fromisoformat(t)   # ValueError for impossible dates (02-30, 25:00)


def to_us(dt: datetime) -> int:
    """Microseconds since the epoch (UTC); exact integer arithmetic."""
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * US_PER_SECOND + delta.microseconds


def from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def shanghai_date(us: int) -> date:
    return from_us(us).astimezone(SHANGHAI).date()


_DAY_TEXT: dict[int, str] = {}


def shanghai_day(us: int) -> str:
    """The Asia/Shanghai date YYYY-MM-DD of an instant; fast (a cache per day), for capture's
    hot loop."""
    day = (us + SHANGHAI_OFFSET_US) // US_PER_DAY
    text = _DAY_TEXT.get(day)
    if text is None:
        text = _DAY_TEXT[day] = shanghai_date(us).isoformat()
    return text


def shanghai_date_sql(column: str) -> str:
    """DuckDB: the Asia/Shanghai date (YYYY-MM-DD) of an epoch-microseconds column."""
    return f"strftime(make_timestamp({column} + {SHANGHAI_OFFSET_US}), '%Y-%m-%d')"


def day_end_us(day: str) -> int:
    """The first instant after the Asia/Shanghai day YYYY-MM-DD (its midnight, exclusive end)."""
    d = date.fromisoformat(day) + timedelta(days=1)
    return to_us(datetime(d.year, d.month, d.day, tzinfo=SHANGHAI))


def parse_period(period: str) -> tuple[int, int]:
    try:
        year, month = period.split("-")
        y, m = int(year), int(month)
        if len(year) != 4 or len(month) != 2 or not 1 <= m <= 12:
            raise ValueError
    except ValueError:
        raise ValueError(f"period {period!r} is not YYYY-MM") from None
    return y, m


def period_start_us(period: str) -> int:
    y, m = parse_period(period)
    return to_us(datetime(y, m, 1, tzinfo=SHANGHAI))


def period_end_us(period: str) -> int:
    """end(P): the first instant of the next month, Asia/Shanghai."""
    return period_start_us(next_period(period))


def next_period(period: str) -> str:
    y, m = parse_period(period)
    return f"{y + (m == 12):04d}-{m % 12 + 1:02d}"


def previous_period(period: str) -> str:
    y, m = parse_period(period)
    return f"{y - (m == 1):04d}-{(m - 2) % 12 + 1:02d}"

