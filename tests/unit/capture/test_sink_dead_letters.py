"""The capture sink's dead-letter path (rulebook §1, v2) with a frozen clock and an in-memory
dead-letter producer: events from the future never create a day partition, and no raw IP reaches
the dead letters' Parquet rows or the dead-letter topic (value, key, headers). The real broker:
tests/integration/test_capture.py."""

import json

from o2p.config import load_config
from streaming.capture import sink as sink_module
from streaming.capture.sink import Rec, Sink
from tests.recording_producer import RecordingProducer
from tests.unit.capture.sink_helpers import CAPTURED_US, CLICKS, IPS, click, rows


def test_an_event_from_the_future_is_a_dead_letter_and_creates_no_day_partition(sink):
    records = [
        Rec(0, b"B", click(0, occurred_at="2099-01-01T00:00:00+08:00"), 0),
        Rec(1, b"B", click(1, occurred_at="2026-12-01T10:05:00+08:00"), 0),           # exactly 300 s ahead
        Rec(2, b"B", click(2, occurred_at="2026-12-01T10:05:00.000001+08:00"), 0),    # 1 µs more
        Rec(3, b"B", click(3, occurred_at="2026-12-01T02:04:59.999999Z"), 0),         # just inside
    ]
    sink.land(CLICKS, 0, records)
    landing = sink.cfg.landing_path
    assert sorted(p.name for p in (landing / "clicks").iterdir()) == ["event_date=2026-12-01"]
    assert not (landing / "clicks" / "event_date=2099-01-01").exists()
    assert sorted(r["event_id"] for r in rows(landing, "clicks")) == ["c1", "c3"]
    dead = {r["_offset"]: r["reason"] for r in rows(landing, "deadletters")}
    assert set(dead) == {0, 2}
    assert dead[0].startswith("occurred_in_future: occurred_at 2099-01-01T00:00:00+08:00 is ")
    assert dead[0].endswith(" days after its capture (quality.max_future_seconds = 300)")
    assert dead[2] == ("occurred_in_future: occurred_at 2026-12-01T10:05:00.000001+08:00 is 300.000001 s after "
                       "its capture (quality.max_future_seconds = 300)")
    assert [dict(h)["o2p.reason"].decode() for *_, h in sink.dlq.sent] == [dead[0], dead[2]]


def test_max_future_seconds_comes_from_the_config(tmp_path, monkeypatch):
    monkeypatch.setenv("O2P_IP_SALT", "unit-salt")
    monkeypatch.setattr(sink_module.time, "time_ns", lambda: CAPTURED_US * 1000)
    (tmp_path / "c.yaml").write_text("quality:\n  max_future_seconds: 0\n")
    s = Sink(load_config(tmp_path / "c.yaml", home=tmp_path))
    s.dlq = RecordingProducer()
    s.acquire(CLICKS, 0)
    s.land(CLICKS, 0, [Rec(0, b"B", click(0, occurred_at="2026-12-01T10:00:00+08:00"), 0),
                       Rec(1, b"B", click(1, occurred_at="2026-12-01T10:00:01+08:00"), 0)])
    (dead,) = rows(s.cfg.landing_path, "deadletters")
    assert dead["_offset"] == 1 and dead["reason"].endswith("is 1 s after its capture (quality.max_future_seconds = 0)")
    s.release(CLICKS, 0)


def test_no_raw_ip_in_dead_letters_nor_on_the_dead_letter_topic(sink):
    records = [
        Rec(0, b"B", click(0, ip=IPS[0]), 0),                                          # valid: only ip_hash
        Rec(1, b"B", click(1, ip=IPS[0], channel="tv"), 0),                            # invalid click
        Rec(2, b"B", f"client {IPS[1]} sent garbage [{IPS[2]}]:443".encode(), 0),      # not JSON
        Rec(3, b"B", click(3, ip=IPS[3], occurred_at="2099-01-01T00:00:00+08:00"), 0),  # from the future
        Rec(4, b"B", click(4, ip=IPS[4], event_type=IPS[5]), 0),                       # the reason quotes it
        Rec(5, IPS[6].encode(), b"\xff\xfe\x81 ip=" + IPS[6].encode() + b" \xc3(", 0),  # not UTF-8, key too
        Rec(6, b"B", click(6, ip=", ".join([IPS[7]] * 6)), 0),                          # an X-Forwarded-For list: > 64
        Rec(7, b"B", click(7, ip=IPS[8], occurred_at="2026-11-30T23:30:00"), 0),       # naive timestamp
    ]
    sink.land(CLICKS, 0, records)
    landing = sink.cfg.landing_path
    (valid,) = rows(landing, "clicks")
    assert valid["ip_hash"] == sink.hasher(IPS[0]) and "ip" not in valid
    dead = rows(landing, "deadletters")
    assert sorted(r["_offset"] for r in dead) == list(range(1, 8))
    assert next(r for r in dead if r["_offset"] == 3)["reason"].startswith("occurred_in_future:")
    assert next(r for r in dead if r["_offset"] == 4)["reason"].startswith("unknown event_type 'ip-masked:")
    cells = [c for r in dead for c in r.values() if isinstance(c, str | bytes)]
    cells += [x for _, key, value, headers in sink.dlq.sent for x in (key, value, *(v for _, v in headers))]
    assert len(sink.dlq.sent) == 7
    for ip in IPS:
        for cell in cells:
            assert (ip.encode() if isinstance(cell, bytes) else ip) not in cell, (ip, cell)
    # what stands in its place says what it was, and is the same for the same address
    masked = {r["_offset"]: r["raw"] for r in dead}
    mark = b"ip-masked:" + sink.hasher(IPS[0])[:12].encode()
    assert json.loads(masked[1])["ip"] == mark.decode()
    assert valid["ip_hash"].startswith(mark.decode()[len("ip-masked:"):])
    assert masked[5].startswith(b"\xff\xfe\x81 ip=ip-masked:") and masked[5].endswith(b" \xc3(")
    assert next(r for r in dead if r["_offset"] == 5)["key"] == b"ip-masked:" + sink.hasher(IPS[6])[:12].encode()
    assert [v for _, _, v, _ in sink.dlq.sent] == [masked[o] for o in range(1, 8)]
