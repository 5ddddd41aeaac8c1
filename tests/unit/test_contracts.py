"""The contract (rulebook §1). Property tests on hundreds of generated events: every valid
event passes and lands with its instant and Shanghai date; every malformed one is refused
with a reason a person can act on. And events from the future: more than
quality.max_future_seconds after their capture, they are refused (v2). The same corpus goes through the real broker in
tests/integration/test_capture.py."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from o2p.timeutil import SHANGHAI, parse_rfc3339, to_us
from streaming.contracts import ContractError, validate_event
from tests.corpus import encode, malformed, valid_events

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# what capture passes: its capture time (here: now) plus quality.max_future_seconds (300)
LATEST_US = (datetime.now(UTC) - EPOCH) // timedelta(microseconds=1) + 300_000_000


@settings(max_examples=400, deadline=None)
@given(valid_events())
def test_every_valid_event_passes_with_its_instant_and_shanghai_date(event):
    topic_table = {"click": "clicks", "refund": "refunds"}.get(event["event_type"], "orders")
    row = validate_event(encode(event), topic_table, lambda ip: "h:" + ip, LATEST_US, 300)
    text = event["occurred_at"]
    dt = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    assert row["occurred_at"] == text
    assert row["event_date"] == dt.astimezone(SHANGHAI).date().isoformat()
    assert row["occurred_at_us"] == (dt - EPOCH) // timedelta(microseconds=1)
    assert "ip" not in row
    if event["event_type"] == "click":
        assert row["ip_hash"] == ("h:" + event["ip"] if event.get("ip") else None)
    for k, v in event.items():
        if k != "ip":
            assert row[k] == v


@settings(max_examples=600, deadline=None)
@given(malformed(max_message_bytes=None))
def test_every_malformed_message_is_refused_with_a_reason(bad):
    topic_table, raw, how = bad
    try:
        validate_event(raw, topic_table, None, LATEST_US, 300)
    except ContractError as exc:
        reason = str(exc)
        assert reason and len(reason) < 2000, how
        if how == "future":
            assert reason.startswith("occurred_in_future: occurred_at "), reason
            assert reason.endswith(" after its capture (quality.max_future_seconds = 300)"), reason
        if how == "wrong_topic":
            assert "belongs on the" in reason
        if how == "arithmetic":
            assert "paid_fen" in reason
        if how == "unknown_type":
            assert "event_type" in reason
        return
    raise AssertionError(f"{how}: accepted {raw[:300]!r}")


@given(st.sampled_from(["2026-10-01T10:00:00.123456789+08:00", "2026-10-01t10:00:00.1234567z"]))
def test_fractions_beyond_microseconds_are_truncated(ts):
    row = validate_event(encode({"event_id": "e", "event_type": "order_confirmed", "occurred_at": ts,
                                 "source": "bot", "schema_version": 1, "order_id": "O"}), "orders")
    assert row["occurred_at_us"] % 1_000_000 == 123456


CAPTURED = to_us(parse_rfc3339("2026-12-01T10:00:00+08:00"))
MAX_FUTURE = 300
LATEST = CAPTURED + MAX_FUTURE * 1_000_000


def _order_confirmed(occurred_at: str) -> bytes:
    return encode({"event_id": "e", "event_type": "order_confirmed", "occurred_at": occurred_at,
                   "source": "bot", "schema_version": 1, "order_id": "O"})


def test_exactly_max_future_seconds_ahead_is_accepted_one_microsecond_more_is_refused():
    row = validate_event(_order_confirmed("2026-12-01T10:05:00+08:00"), "orders", None, LATEST, MAX_FUTURE)
    assert row["occurred_at_us"] == LATEST
    row = validate_event(_order_confirmed("2026-12-01T02:05:00Z"), "orders", None, LATEST, MAX_FUTURE)
    assert row["occurred_at_us"] == LATEST                   # the same instant in another offset
    with pytest.raises(ContractError) as exc:
        validate_event(_order_confirmed("2026-12-01T10:05:00.000001+08:00"), "orders", None, LATEST, MAX_FUTURE)
    assert str(exc.value) == ("occurred_in_future: occurred_at 2026-12-01T10:05:00.000001+08:00 is 300.000001 s "
                              "after its capture (quality.max_future_seconds = 300)")


def test_a_far_future_event_names_the_distance_in_days():
    with pytest.raises(ContractError) as exc:
        validate_event(_order_confirmed("2099-01-01T00:00:00+08:00"), "orders", None, LATEST, MAX_FUTURE)
    days = (to_us(parse_rfc3339("2099-01-01T00:00:00+08:00")) - CAPTURED) // 86_400_000_000
    assert str(exc.value) == (f"occurred_in_future: occurred_at 2099-01-01T00:00:00+08:00 is {days} days after its "
                              "capture (quality.max_future_seconds = 300)")
    with pytest.raises(ContractError, match=r"^occurred_in_future: .* is 5\.0 hours after its capture"):
        validate_event(_order_confirmed("2026-12-01T15:00:00+08:00"), "orders", None, LATEST, MAX_FUTURE)


def test_max_future_seconds_zero_accepts_the_capture_instant_only():
    validate_event(_order_confirmed("2026-12-01T10:00:00+08:00"), "orders", None, CAPTURED, 0)
    with pytest.raises(ContractError, match=r"is 0\.000001 s after its capture \(quality\.max_future_seconds = 0\)"):
        validate_event(_order_confirmed("2026-12-01T10:00:00.000001+08:00"), "orders", None, CAPTURED, 0)


def test_without_a_bound_any_valid_year_is_accepted():
    assert validate_event(_order_confirmed("2099-01-01T00:00:00+08:00"), "orders")["event_date"] == "2099-01-01"
