"""Property tests of the contract (rulebook §1) on hundreds of generated events: every valid
event passes and lands with its instant and Shanghai date; every malformed one is refused
with a reason a person can act on. The same corpus goes through the real broker in
tests/integration/test_capture.py."""

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from o2p.timeutil import SHANGHAI
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
