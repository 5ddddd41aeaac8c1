"""Faults on a real three-node KRaft cluster (the `kafka_cluster` fixture: every node a broker
and a controller, topics with replication factor 3 and min.insync.replicas 2, the publisher with
acks=all and idempotence). kill -9 of the leader of a partition, and of the active controller,
while events are being published and captured; the whole cluster killed and started again in
the middle of a capture. Each time: every published event is in the log once, every offset of
the log is landed once, with the event it holds, and capture lands on or says it waits and
resumes (when the whole cluster dies, today's capture stops with exit 1 and one line, and the
next run lands the rest: the test accepts that or waiting it out). Each test leaves the cluster whole (every replica in sync) for the next."""

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter

import pytest

from streaming import broker as kb
from streaming.health import capture_health, log_offsets
from streaming.producer import EventPublisher
from tests import kafka_cluster as kc
from tests.conftest import REPO
from tests.integration.test_capture import SALT, make_cfg, request_kill_at_exit

pytestmark = pytest.mark.integration


def clicks(n: int, prefix: str) -> list[dict]:
    return [{"event_id": f"{prefix}-{i}-{uuid.uuid4().hex[:12]}", "event_type": "click",
             "occurred_at": "2026-10-02T10:00:00+08:00", "source": "bot", "schema_version": 1,
             "promoter_id": f"P{i % 97}", "share_id": f"S{i}", "buyer_id": f"B{i % 5003}",
             "device_id": f"D{i % 7919}", "sku_id": "SKU1", "channel": "group"} for i in range(n)]


def start_capture(cfg_file, cfg, *extra):
    log_path = cfg.home_path / f"capture-{time.monotonic_ns()}.log"
    proc = subprocess.Popen([sys.executable, "-u", "-m", "o2p.cli", "--config", str(cfg_file), "--home",
                             str(cfg.home_path), "capture", *extra], cwd=REPO, env={**os.environ, **SALT},
                            stdout=open(log_path, "w"), stderr=subprocess.STDOUT)
    request_kill_at_exit(proc)
    return proc, log_path


def wait_for(ok, seconds: float, what: str) -> float:
    started = time.monotonic()
    while not ok():
        assert time.monotonic() - started < seconds, f"{what} did not happen within {seconds:.0f} s"
        time.sleep(0.1)
    return time.monotonic() - started


def all_landed(cfg) -> bool:
    offsets = log_offsets(cfg)
    rows = capture_health(cfg, offsets)
    return bool(rows) and offsets is not None and all(r["lag"] == 0 for r in rows)


def assert_exactly_once(cfg, published: list[dict]) -> None:
    """The log holds each published event once; the landing zone holds each offset of the log
    once, with the event the log holds there."""
    log = kc.read_back(cfg)
    assert Counter(log.values()) == Counter(e["event_id"] for e in published)   # 0 lost, 0 duplicated
    landed, times = kc.landed_by_offset(cfg)
    assert set(times.values()) == {1}, [k for k, v in times.items() if v != 1][:10]
    assert landed == log


class Publisher(threading.Thread):
    """Publishes the events in chunks of 1000 (each flushed: acks=all on two replicas at least),
    so that a fault lands in the middle of the stream; keeps the error it ends with."""

    def __init__(self, cfg, events):
        super().__init__(daemon=True)
        self.cfg, self.events, self.sent, self.error = cfg, events, 0, None

    def run(self):
        try:
            with EventPublisher(self.cfg) as pub:
                for i, e in enumerate(self.events, start=1):
                    pub.publish(e)
                    if i % 1000 == 0:
                        pub.flush()
                        self.sent = i
        except BaseException as exc:   # noqa: BLE001 - asserted by the test
            self.error = exc


def publish_and_capture_through(cluster, cfg, cfg_file, fault, n: int) -> dict:
    """Capture runs as a service while n events are published; `fault()` strikes once a third
    is acknowledged and capture has landed some. Capture must land everything with the node still
    down, then stop on SIGTERM with exit 0; the cluster is made whole again."""
    events = clicks(n, "f")
    capture, log_path = start_capture(cfg_file, cfg)
    times = {}
    try:
        wait_for(lambda: "capture: assigned" in log_path.read_text(), 60, "an assignment")
        pub = Publisher(cfg, events)
        pub.start()
        wait_for(lambda: pub.sent >= n // 3 and sum(r["landed"] for r in capture_health(cfg)) > 0, 60,
                 "publishing and landing a third")
        t0 = time.monotonic()
        times["killed"] = fault()
        pub.join(timeout=90)
        assert not pub.is_alive() and pub.error is None, pub.error
        times["published_after_kill_s"] = round(time.monotonic() - t0, 1)
        wait_for(lambda: all_landed(cfg), 60, "landing everything with a node down")
        times["landed_after_kill_s"] = round(time.monotonic() - t0, 1)
        assert capture.poll() is None, log_path.read_text()
        capture.send_signal(signal.SIGTERM)
        assert capture.wait(timeout=60) == 0, log_path.read_text()
    finally:
        times["restore_s"] = round(kc.restore(cluster), 1)
    out = log_path.read_text()
    assert "Traceback" not in out, out
    assert_exactly_once(cfg, events)
    print(f"\n{times}")
    return times


def test_kill_9_of_a_partition_leader_while_publishing_and_capturing_loses_and_doubles_nothing(
        kafka_cluster, tmp_path):
    cfg, cfg_file = make_cfg(kafka_cluster, tmp_path, "  flush_records: 500\n  flush_seconds: 0.5\n")

    def kill_the_leader():
        node = kc.partition_leader(cfg, cfg.kafka.topics.clicks, 0)
        kc.kill_node(kafka_cluster, node)
        return node

    publish_and_capture_through(kafka_cluster, cfg, cfg_file, kill_the_leader, 30000)


def test_kill_9_of_the_active_controller_while_publishing_and_capturing_loses_and_doubles_nothing(
        kafka_cluster, tmp_path):
    cfg, cfg_file = make_cfg(kafka_cluster, tmp_path, "  flush_records: 500\n  flush_seconds: 0.5\n")
    killed: list = []

    def kill_the_controller():
        node = kc.active_controller(cfg)
        kc.kill_node(kafka_cluster, node)
        killed.append((node, time.monotonic()))
        return node

    publish_and_capture_through(kafka_cluster, cfg, cfg_file, kill_the_controller, 30000)


def test_the_whole_cluster_killed_and_started_again_mid_capture_lands_the_rest_exactly_once(
        kafka_cluster, tmp_path):
    cfg, cfg_file = make_cfg(kafka_cluster, tmp_path,
                             "  flush_records: 300\n  flush_seconds: 0.5\n  broker_unreachable_seconds: 120\n")
    before, after = clicks(20000, "w"), clicks(2000, "after")
    events = before + after
    with EventPublisher(cfg) as pub:
        for e in before:
            pub.publish(e)
    # Not --until-idle: on a quiet machine capture can land all 20k and exit before the
    # cluster dies (it did once in CI), and then the test would prove nothing. And 2,000 more
    # are published once the cluster is back: capture can land the first 20k before the cluster
    # dies (it did in CI), so only events that exist after the restart prove it resumed.
    capture, log_path = start_capture(cfg_file, cfg)
    try:
        wait_for(lambda: sum(r["landed"] for r in capture_health(cfg)) > 0, 60, "a first landed batch")
        kc.kill_all(kafka_cluster)      # every node at once: no broker, no controller
        time.sleep(5)
        stopped = capture.poll() is not None
        if stopped:   # it stopped: with exit 1 and one line saying what to do
            out = log_path.read_text()
            assert capture.returncode == 1, out
            assert [ln for ln in out.splitlines() if ln.strip()][-1].startswith(
                "o2p: the Kafka broker is not reachable: start it (`o2p kafka up`)"), out
        kb.up(kafka_cluster, log=lambda *_: None)
        with EventPublisher(cfg) as pub:
            for e in after:
                pub.publish(e)
        if stopped:   # and run again, it lands the rest
            first = log_path.read_text()
            capture, log_path = start_capture(cfg_file, cfg, "--until-idle")
            assert capture.wait(timeout=150) == 0, log_path.read_text()
        else:         # it waited: it lands the rest, then stops cleanly when told to
            wait_for(lambda: sum(r["landed"] for r in capture_health(cfg)) >= len(events), 150, "the rest landed")
            capture.send_signal(signal.SIGTERM)
            assert capture.wait(timeout=60) == 0, log_path.read_text()
    finally:
        kc.restore(kafka_cluster)
    if stopped:
        print(f"\ncapture stopped when the whole cluster died:\n{first}")
    out = log_path.read_text()
    if not stopped:   # it waited, saying so, and went on
        assert "unreachable for" in out and "reachable again after" in out, out
    assert "Traceback" not in out, out
    assert_exactly_once(cfg, events)


def test_a_rebalance_storm_lands_every_offset_once_and_leaves_the_commits_at_the_log_ends(kafka_cluster):
    """bench/storm.py, small: 60k events (half published during the storm), three capture
    processes at most, one started or killed (-9 or SIGTERM) every ~2 s for 30 s; then one
    `capture --until-idle`. Every offset once, every event once, each SIGTERM exit 0, and the
    group's committed offsets at the log ends."""
    import json

    proc = subprocess.run([sys.executable, str(REPO / "bench" / "storm.py"), "--bootstrap",
                           kafka_cluster.kafka.bootstrap_servers, "--events", "60000", "--storm-seconds", "30",
                           "--interval", "2", "--json"], cwd=REPO, capture_output=True, text=True, timeout=240)
    assert proc.stdout.strip(), proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"\n{result}")
    assert result["starts"] >= 5 and result["kill_9"] + result["sigterm"] >= 5, result
    assert result["offsets_exactly_once"] and result["event_ids_exactly_once"], result
    # −15: a SIGTERM that came before capture installed its handler (the Python start-up), which
    # issue #16 part 3 fixes in capture; any other exit of a SIGTERMed or surviving process fails
    assert all(code == -15 for _, code in result["bad_exits"]) and result["final_exit"] == 0, result
    assert result["committed_at_log_ends"], result
    assert proc.returncode in (0, 1), proc.stderr[-3000:]   # 1: a −15 exit, allowed above
