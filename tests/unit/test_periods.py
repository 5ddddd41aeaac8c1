"""Days and periods that cannot be worked on yet are refused before any work, with the reason."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from o2p.config import load_config
from o2p.errors import InputError
from o2p.periods import refuse_future_days


def _us(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=ZoneInfo("Asia/Shanghai")).timestamp() * 1_000_000)


def test_a_day_that_has_not_begun_is_refused_with_the_rulebook_reason(tmp_path):
    cfg = load_config(home=tmp_path)
    noon = _us("2026-12-02T12:00:00")
    refuse_future_days(cfg, "2026-12-01", "2026-12-02", noon)   # today: fine
    with pytest.raises(InputError, match=r"days 2026-12-03\.\.2026-12-03 have not begun yet .*occurred_in_future"):
        refuse_future_days(cfg, "2026-12-03", "2026-12-03", noon)
    with pytest.raises(InputError, match=r"days 2026-12-03\.\.2026-12-05"):
        refuse_future_days(cfg, "2026-11-20", "2026-12-05", noon)
    # five minutes before midnight, tomorrow can already hold events (producers' clock skew)
    refuse_future_days(cfg, "2026-12-03", "2026-12-03", _us("2026-12-02T23:56:00"))
