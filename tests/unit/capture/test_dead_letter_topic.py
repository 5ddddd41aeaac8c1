"""The dead-letter topic (`streaming.capture.dead_letter_topic`), through the sink that sends to it
before its commit point: what the broker does not acknowledge is sent again, an unreachable topic
stops `--until-idle` capture before anything is committed, a record the broker will never take
stops capture at once, and a value over the largest request is cut to fit. The real broker:
tests/integration/test_capture.py."""

import pytest

from streaming.capture import sink as sink_module
from streaming.capture.sink import Rec
from tests.unit.capture.sink_helpers import CLICKS, rows


def _bad_batch(n=2):
    return [Rec(i, None, b"not json from 203.0.113.99", 0) for i in range(n)]


def test_dead_letters_the_broker_did_not_take_are_sent_again_before_the_batch_is_committed(sink, monkeypatch):
    from kafka.errors import KafkaTimeoutError

    from tests.recording_producer import RefusingProducer

    monkeypatch.setattr(sink_module.time, "sleep", lambda s: None)
    sink.dlq = RefusingProducer(KafkaTimeoutError("broker away"), times=2)   # both refused once
    result = sink.land(CLICKS, 0, _bad_batch())
    assert result["next_offset"] == 2
    assert [k for _, k, _, _ in sink.dlq.sent] == [f"{CLICKS}/0/0".encode(), f"{CLICKS}/0/1".encode()] * 2


def test_an_unreachable_dead_letter_topic_stops_until_idle_capture_before_the_commit(sink, monkeypatch):
    from kafka.errors import KafkaTimeoutError

    from o2p.errors import O2PError
    from tests.recording_producer import RefusingProducer

    clock = iter(range(0, 10**6, 100))   # each look at the clock: 100 s later
    monkeypatch.setattr(sink_module.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(sink_module.time, "sleep", lambda s: None)
    sink.dlq = RefusingProducer(KafkaTimeoutError("broker away"))
    with pytest.raises(O2PError, match=r"could not send 2 dead letter\(s\) .* within 300 s .*broker away"):
        sink.land(CLICKS, 0, _bad_batch())
    state = sink.state_dir / f"{CLICKS}+0.json"
    assert not state.exists() and rows(sink.landing, "deadletters") == []   # nothing committed


def test_a_record_the_broker_will_never_take_stops_capture_at_once_naming_it(sink, monkeypatch):
    from kafka.errors import MessageSizeTooLargeError

    from o2p.errors import O2PError
    from tests.recording_producer import RefusingProducer

    sink.dlq = RefusingProducer(MessageSizeTooLargeError("too large"))
    with pytest.raises(O2PError, match="too large; nothing of this batch was committed"):
        sink.land(CLICKS, 0, _bad_batch(1))
    assert len(sink.dlq.sent) == 1    # not retried


def test_a_dead_letter_over_the_largest_request_is_cut_to_fit_on_the_topic_and_kept_whole(sink):
    from streaming.producer import max_message_size

    huge = b"x" * (max_message_size(sink.cfg) + 10)
    sink.land(CLICKS, 0, [Rec(0, None, huge, 0)])
    [(_, _, value, headers)] = sink.dlq.sent
    assert len(value) < max_message_size(sink.cfg) and dict(headers)["o2p.truncated"] == str(len(huge)).encode()
    assert [r["raw"] for r in rows(sink.landing, "deadletters")] == [huge]
