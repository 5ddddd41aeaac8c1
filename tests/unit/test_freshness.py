"""The landing freshness check: lag and nothing landed for capture.stale_after_seconds."""

from pipelines.assets.landing.assets import freshness


def _row(lag, age):
    return {"lag": lag, "last_flush_age_s": age}


def test_fresh_when_nothing_waits_or_capture_keeps_landing():
    assert freshness([_row(0, 5000), _row(0, None)], True, 900) == (True, "no lag: everything published has landed")
    assert freshness([_row(10, 5000), _row(5, 30)], True, 900) == (True, "15 records waiting, last landed 30 s ago")


def test_stale_when_records_wait_and_nothing_landed_for_too_long():
    ok, why = freshness([_row(10, 1000), _row(5, 950)], True, 900)
    assert not ok and why.startswith("15 records waiting and nothing landed for 950 s (capture.stale_after_seconds = 900)")
    ok, why = freshness([_row(3, None)], True, 900)
    assert not ok and "nothing has ever landed" in why


def test_a_broker_that_cannot_be_reached_is_not_called_fresh():
    ok, why = freshness([_row(None, 10)], False, 900)
    assert not ok and "not reachable" in why
