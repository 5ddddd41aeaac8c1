"""The `sink` fixture: a Sink owning partition 0 of the clicks topic, at a frozen capture time,
with an in-memory dead-letter producer."""

import pytest

from o2p.config import load_config
from streaming.capture import sink as sink_module
from streaming.capture.sink import Sink
from tests.recording_producer import RecordingProducer
from tests.unit.capture.sink_helpers import CAPTURED_US, CLICKS


@pytest.fixture
def sink(tmp_path, monkeypatch):
    monkeypatch.setenv("O2P_IP_SALT", "unit-salt")
    monkeypatch.setattr(sink_module.time, "time_ns", lambda: CAPTURED_US * 1000)   # the capture time
    s = Sink(load_config(None, home=tmp_path))
    s.dlq = RecordingProducer()
    s.acquire(CLICKS, 0)
    s.recover(CLICKS, 0)
    yield s
    s.release(CLICKS, 0)
