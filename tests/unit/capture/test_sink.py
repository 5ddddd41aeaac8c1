"""The capture sink's commit protocol, crashed at every file-system step.

The real consumer runs against a broker in tests/integration/test_capture.py (kill -9 at random
moments). Here the sink (the file side of capture) runs alone, with an in-memory stand-in for the
dead-letter producer, so that the crash can be put exactly at each step of a flush (every fsync and every rename, the state file's own included): after each
crash a fresh Capture recovers and consumes the rest, and the landing zone must hold every offset
exactly once, with no temporary file left behind.
"""

import json
import os
from collections import Counter

import pyarrow.dataset as ds
import pytest

from o2p.config import load_config
from streaming.capture.sink import Rec, Sink
from tests.recording_producer import RecordingProducer


class Crash(BaseException):
    """Stands for kill -9: raised by an instrumented fsync or rename, caught by the test."""


TOPIC, PART = "o2p.orders.v1", 0


def _event(i: int) -> bytes:
    day = "2026-10-05" if i % 3 else "2026-10-06"   # every batch spans two event dates
    return json.dumps({"event_id": f"e{i}", "event_type": "order_confirmed", "source": "bot",
                       "schema_version": 1, "occurred_at": f"{day}T23:{i % 60:02d}:00+08:00",
                       "order_id": f"O{i}"}).encode()


RECORDS = [Rec(i, None, b"{broken" if i % 7 == 3 else _event(i), 0) for i in range(30)]
BATCH = 8


def _session(cfg, crash_after: int | None, counter: list, batch: int = BATCH) -> None:
    """One capture process: recover, then consume the rest in batches; `crash_after` steps in."""
    sink = Sink(cfg)
    sink.dlq = RecordingProducer()
    sink.acquire(TOPIC, PART)
    nxt = sink.recover(TOPIC, PART) or 0
    real_replace, real_fsync = os.replace, os.fsync

    def step(fn):
        def wrapped(*a, **kw):
            counter[0] += 1
            if crash_after is not None and counter[0] > crash_after:
                raise Crash
            return fn(*a, **kw)
        return wrapped

    os.replace, os.fsync = step(real_replace), step(real_fsync)
    try:
        while nxt < len(RECORDS):
            sink.land(TOPIC, PART, RECORDS[nxt:nxt + batch])
            nxt = min(nxt + batch, len(RECORDS))
    finally:
        os.replace, os.fsync = real_replace, real_fsync
        sink.release(TOPIC, PART)   # as the kernel does when the process dies


def _landed(landing):
    offsets = Counter()
    for table in ("orders", "deadletters"):
        if (landing / table).is_dir():
            for row in ds.dataset(landing / table, format="parquet").to_table(columns=["_offset"]).to_pylist():
                offsets[row["_offset"]] += 1
    return offsets


def _steps_of_a_clean_run(tmp_path) -> int:
    cfg = load_config(None, home=tmp_path / "clean")
    counter = [0]
    _session(cfg, None, counter)
    return counter[0]


def test_clean_run_lands_everything_once(tmp_path):
    cfg = load_config(None, home=tmp_path)
    _session(cfg, None, [0])
    assert _landed(cfg.landing_path) == Counter({i: 1 for i in range(30)})
    state = json.loads((cfg.landing_path / "_state" / "o2p.orders.v1+0.json").read_text())
    assert (state["next_offset"], state["consumed"], state["dead_lettered"], state["landed"]) == (30, 30, 4, 26)


def test_crash_at_every_step_then_restart_lands_every_offset_once(tmp_path):
    total = _steps_of_a_clean_run(tmp_path)
    assert total > 20   # fsyncs and renames of 4 batches
    for k in range(total):
        cfg = load_config(None, home=tmp_path / f"crash{k}")
        counter = [0]
        with pytest.raises(Crash):
            _session(cfg, k, counter)
        _session(cfg, None, [0], batch=5)   # the restarted process; its polls cut batches elsewhere
        landed = _landed(cfg.landing_path)
        assert landed == Counter({i: 1 for i in range(30)}), f"crash after step {k}: {landed}"
        assert not any((cfg.landing_path / "_tmp").glob("*")), f"crash after step {k}: temporary files left"
        state = json.loads((cfg.landing_path / "_state" / "o2p.orders.v1+0.json").read_text())
        assert (state["next_offset"], state["consumed"], state["dead_lettered"]) == (30, 30, 4), k


def _sink(cfg):
    sink = Sink(cfg)
    sink.dlq = RecordingProducer()
    return sink


def test_a_second_owner_waits_for_the_lock_then_stops_with_a_clear_error(tmp_path):
    from o2p.errors import O2PError

    (tmp_path / "c.yaml").write_text("capture:\n  lock_timeout_seconds: 0.3\n")
    cfg = load_config(tmp_path / "c.yaml", home=tmp_path)
    first, second = _sink(cfg), _sink(cfg)
    first.acquire(TOPIC, PART)
    with pytest.raises(O2PError, match=r"o2p.orders.v1\[0\] is still locked by another capture process \(pid "):
        second.acquire(TOPIC, PART)
    first.release(TOPIC, PART)
    second.acquire(TOPIC, PART)     # free once the owner lets go


def test_a_process_without_the_lock_lands_nothing(tmp_path):
    cfg = load_config(None, home=tmp_path)
    assert _sink(cfg).land(TOPIC, PART, RECORDS[:5]) is None
    assert not list(cfg.landing_path.rglob("*.parquet")) and not list(cfg.landing_path.rglob("*.json"))


def test_redelivered_offsets_are_skipped_and_a_jump_is_recorded_as_a_gap(tmp_path):
    cfg = load_config(None, home=tmp_path)
    sink = _sink(cfg)
    sink.acquire(TOPIC, PART)
    sink.recover(TOPIC, PART)
    sink.land(TOPIC, PART, RECORDS[0:10])
    sink.land(TOPIC, PART, RECORDS[6:14])     # 6-9 again (a re-delivery), then 10-13
    sink.land(TOPIC, PART, RECORDS[20:24])    # 14-19 are gone from the log
    assert _landed(cfg.landing_path) == Counter({i: 1 for i in [*range(14), *range(20, 24)]})
    state = json.loads((cfg.landing_path / "_state" / "o2p.orders.v1+0.json").read_text())
    assert (state["next_offset"], state["consumed"], state["gaps"]) == (24, 18, [[14, 19]])
    assert len(sink.dlq.sent) == 2 and all(dict(h)["o2p.reason"] for *_, h in sink.dlq.sent)   # 3 and 10
