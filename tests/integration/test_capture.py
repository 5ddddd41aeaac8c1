"""Capture on the real broker: kill -9 at random moments, a hypothesis corpus of malformed
messages, a third-party client (kcat), and two consumer processes sharing the partitions with a
graceful SIGTERM. Every test has its own topics, consumer group and landing zone."""

import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter

import pyarrow.dataset as ds
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from o2p.config import load_config
from streaming import broker as kb
from streaming.health import capture_health, log_offsets
from streaming.producer import EventPublisher
from streaming.simulate import build_world, messages
from tests.conftest import REPO, run_o2p
from tests.corpus import encode, malformed, valid_events

pytestmark = pytest.mark.integration
SALT = {"O2P_IP_SALT": "test-salt"}


def make_cfg(broker, tmp_path, capture_yaml="", partitions=3):
    name = f"t{uuid.uuid4().hex[:8]}"
    home = tmp_path / name
    home.mkdir(parents=True)
    cfg_file = home / "o2p.yaml"
    cfg_file.write_text(
        f'kafka:\n  bootstrap_servers: "{broker.kafka.bootstrap_servers}"\n  partitions: {partitions}\n'
        f"  consumer_group: {name}-capture\n"
        f"  topics: {{clicks: {name}.clicks, orders: {name}.orders, refunds: {name}.refunds, "
        f"deadletter: {name}.deadletter}}\n"
        f"capture:\n  session_timeout_ms: 2000\n{capture_yaml}"
    )
    cfg = load_config(cfg_file, home=home)
    kb.ensure_topics(cfg)
    return cfg, cfg_file


def capture_proc(cfg_file, cfg, *extra):
    log = open(cfg.home_path / f"capture-{time.monotonic_ns()}.log", "w")
    return subprocess.Popen(
        [sys.executable, "-m", "o2p.cli", "--config", str(cfg_file), "--home", str(cfg.home_path), "capture", *extra],
        cwd=REPO, env={**os.environ, **SALT}, stdout=log, stderr=subprocess.STDOUT)


_STRAYS: list = []


def request_kill_at_exit(proc) -> None:
    _STRAYS.append(proc)


@pytest.fixture(autouse=True)
def _no_stray_capture_processes():
    """A failing test must not leave capture processes behind (they would poll a stopped broker)."""
    yield
    while _STRAYS:
        p = _STRAYS.pop()
        if p.poll() is None:
            p.kill()
            p.wait()


def landed(cfg):
    """Counter of (topic, partition, offset) over every landed table and the dead letters, the
    valid rows' event ids, and the dead letters' reasons by raw message."""
    offsets, event_ids, reasons = Counter(), Counter(), {}
    for table in ("clicks", "orders", "refunds", "deadletters"):
        root = cfg.landing_path / table
        if not root.is_dir():
            continue
        cols = ["_topic", "_partition", "_offset"] + (["raw", "reason"] if table == "deadletters" else ["event_id"])
        for r in ds.dataset(root, format="parquet").to_table(columns=cols).to_pylist():
            offsets[(r["_topic"], r["_partition"], r["_offset"])] += 1
            if table == "deadletters":
                reasons[r["raw"]] = r["reason"]
            else:
                event_ids[r["event_id"]] += 1
    return offsets, event_ids, reasons


def every_offset_once(cfg) -> Counter:
    """What the landing zone must hold: each offset of the log exactly once."""
    offsets = log_offsets(cfg)
    assert offsets is not None
    return Counter({(t, p, o): 1 for (t, p), (begin, end) in offsets.items() for o in range(begin, end)})


def group_committed(cfg) -> dict:
    """The consumer group's committed offsets, as lag tools (kafka-consumer-groups) see them."""
    from kafka import KafkaConsumer
    from kafka.structs import TopicPartition

    c = KafkaConsumer(bootstrap_servers=cfg.kafka.bootstrap_servers, group_id=cfg.kafka.consumer_group,
                      enable_auto_commit=False)
    try:
        return {(t, p): c.committed(TopicPartition(t, p)) for (t, p) in log_offsets(cfg)}
    finally:
        c.close(autocommit=False)


def consumed(cfg) -> int:
    return sum(r["consumed"] for r in capture_health(cfg))


def test_kill_9_five_times_then_every_published_offset_is_landed_exactly_once(broker, tmp_path):
    cfg, cfg_file = make_cfg(broker, tmp_path, "  flush_records: 3000\n  flush_seconds: 0.5\n")
    world = build_world(orders=42_000, seed=5)
    with EventPublisher(cfg) as pub:
        for topic_table, msg in messages(world):   # topic_table: "event" for a valid one
            pub.publish(msg) if topic_table == "event" else pub.publish_raw(getattr(cfg.kafka.topics, topic_table), msg)
    total = len(world.events) + len(world.malformed)
    assert total >= 200_000
    expected = every_offset_once(cfg)
    assert sum(expected.values()) == total

    rng = random.Random(20261125)
    kills = []
    for _ in range(5):
        proc = capture_proc(cfg_file, cfg)
        request_kill_at_exit(proc)
        before = consumed(cfg)
        deadline = time.monotonic() + 60
        while consumed(cfg) == before:              # wait until this process is landing batches
            assert proc.poll() is None, "capture exited early"
            assert time.monotonic() < deadline, "capture made no progress in 60 s"
            time.sleep(0.05)
        time.sleep(rng.uniform(0, 0.4))              # then kill it at a random moment
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        kills.append(consumed(cfg))
    assert kills[-1] < total, f"capture finished before the fifth kill: {kills}"

    run_o2p("--config", str(cfg_file), "--home", str(cfg.home_path), "capture", "--until-idle", env=SALT)
    offsets, event_ids, reasons = landed(cfg)
    assert offsets == expected                      # every offset once, nothing else
    assert event_ids == Counter(e["event_id"] for e in world.events)   # retries too: own offsets
    assert len(reasons) == len({raw for _, raw in world.malformed})
    assert not list((cfg.landing_path / "_tmp").glob("*"))
    assert all(r["lag"] == 0 and not r["gaps"] for r in capture_health(cfg, log_offsets(cfg)))
    # and the group's committed offsets (what operators' lag tools read) are the log ends
    assert group_committed(cfg) == {tp: end for tp, (_, end) in log_offsets(cfg).items()}


def test_a_join_that_outlasts_a_short_poll_still_ends_in_an_assignment(broker, tmp_path):
    """kafka-python 3.0.12 drops a SyncGroup result that arrives after the poll that sent the
    JoinGroup gave up, when the rejoin was triggered by a metadata change (here: the first
    metadata for the subscribed topics arriving after the first, empty join). poll(1 ms) makes
    every round outlast its poll; without `sticky_rejoin` most of these groups stay empty."""
    from kafka import KafkaConsumer

    from streaming.capture.kafka_rejoin_fix import sticky_rejoin

    assigned = []
    for _ in range(6):
        cfg, _ = make_cfg(broker, tmp_path, partitions=2)
        c = KafkaConsumer(bootstrap_servers=cfg.kafka.bootstrap_servers, group_id=cfg.kafka.consumer_group,
                          enable_auto_commit=False)
        try:
            assert sticky_rejoin(c)
            c.subscribe([cfg.kafka.topics.clicks, cfg.kafka.topics.orders])
            deadline = time.monotonic() + 15
            while not c.assignment() and time.monotonic() < deadline:
                c.poll(timeout_ms=1)
            assigned.append(len(c.assignment()))
        finally:
            c.close(autocommit=False)
    assert assigned == [4] * 6


def test_a_partition_whose_high_watermark_no_fetch_response_gave_is_still_seen_caught_up(broker, tmp_path,
                                                                                       monkeypatch):
    """CI 2026-12-02: `capture --until-idle` landed everything after a broker restart and never
    ended. A rebalance had handed it back a partition already at its log end, and the broker's
    incremental fetch session (KIP-227) leaves an unchanged partition out of every fetch
    response, so kafka-python never learnt its high watermark (None: the state the stuck
    process showed, set here by hand since the race that leads to it is rare). Capture then asks
    the broker for that partition's log end: caught up while nothing is new, not caught up once
    something is."""
    from streaming.capture.consumer import Capture

    monkeypatch.setenv("O2P_IP_SALT", SALT["O2P_IP_SALT"])
    cfg, _ = make_cfg(broker, tmp_path, partitions=2)
    events = [{"event_id": f"hw-{i}-{uuid.uuid4().hex[:12]}", "event_type": "click", "schema_version": 1,
               "occurred_at": "2026-10-02T10:00:00+08:00", "source": "bot", "promoter_id": f"P{i % 7}",
               "share_id": f"S{i}", "buyer_id": f"B{i}", "device_id": f"D{i}", "sku_id": "SKU1", "channel": "group"}
              for i in range(200)]
    with EventPublisher(cfg) as pub:
        for e in events:
            pub.publish(e)
    cap = Capture(cfg, echo=lambda *_: None)
    cap._connect()
    try:
        deadline = time.monotonic() + 60
        while not (cap.consumer.assignment() and cap._caught_up(cap.consumer.assignment())):
            assert time.monotonic() < deadline, "capture did not catch up"
            cap._buffer(cap.consumer.poll(timeout_ms=200))
            cap._flush_due(force=True)
        cap.sink.drain()
        assigned = cap.consumer.assignment()
        assert sum(s.landed for s in cap.stats.values()) == len(events)
        for tp in assigned:   # what the fetch session leaves: no high watermark for any partition
            cap.consumer._subscription.assignment[tp].highwater = None
        time.sleep(2.1)       # the log ends are asked for at most once every 2 s
        assert cap._caught_up(assigned)
        with EventPublisher(cfg) as pub:   # one more event, not polled yet
            pub.publish({**events[0], "event_id": f"late-{uuid.uuid4().hex}"})
        time.sleep(2.1)
        assert not cap._caught_up(assigned)
    finally:
        cap._close()


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
@given(corpus=st.lists(st.tuples(st.booleans(), valid_events(), malformed(max_message_bytes=8192)),
                       min_size=12, max_size=30))
def test_malformed_corpus_becomes_dead_letters_and_the_good_around_them_land(broker, tmp_path, corpus):
    cfg, cfg_file = make_cfg(broker, tmp_path, "  max_message_bytes: 8192\n", partitions=2)
    good, bad = [], []
    with EventPublisher(cfg) as pub:
        for i, (is_good, event, (topic_table, raw, how)) in enumerate(corpus):
            if is_good:
                event = {**event, "event_id": f"g{i}"}      # unique, to match them up afterwards
                good.append(event)
                pub.publish(event)
            else:
                bad.append((raw, how))
                pub.publish_raw(getattr(cfg.kafka.topics, topic_table), raw)
    run_o2p("--config", str(cfg_file), "--home", str(cfg.home_path), "capture", "--until-idle", env=SALT)
    offsets, event_ids, reasons = landed(cfg)
    assert offsets == every_offset_once(cfg)
    assert event_ids == Counter(e["event_id"] for e in good)
    mask = salted_masker(cfg)
    for raw, how in bad:
        kept = mask.bytes(raw)          # dead letters keep the raw bytes with every IP masked
        assert reasons.get(kept), f"{how}: {raw[:200]!r} has no dead letter"
        if how == "oversized":
            assert "exceeds capture.max_message_bytes (8192)" in reasons[kept]
        if how == "future":
            assert reasons[kept].startswith("occurred_in_future: ")
        if how == "ip_text":
            assert kept != raw and b"ip-masked:" in kept
    assert all(mask.bytes(raw) == raw and mask.text(why) == why for raw, why in reasons.items())
    # the dead-letter topic has them too, with the reason in a header
    from kafka import KafkaConsumer

    dlq = KafkaConsumer(cfg.kafka.topics.deadletter, bootstrap_servers=cfg.kafka.bootstrap_servers,
                        auto_offset_reset="earliest", enable_auto_commit=False)
    headers, deadline = [], time.monotonic() + 30
    while len(headers) < len(bad) and time.monotonic() < deadline:
        headers += [dict(m.headers) for recs in dlq.poll(timeout_ms=500).values() for m in recs]
    dlq.close()
    assert len(headers) >= len(bad) and all(h.get("o2p.reason") and h.get("o2p.source") for h in headers)


@pytest.mark.skipif(shutil.which("kcat") is None and not os.environ.get("O2P_REQUIRE_KCAT"),
                    reason="kcat (Debian package kcat) is not installed; ./dev test installs it when it can")
def test_events_published_with_kcat_are_captured_like_any_others(broker, tmp_path):
    assert shutil.which("kcat"), "kcat is required here (O2P_REQUIRE_KCAT is set)"
    cfg, cfg_file = make_cfg(broker, tmp_path, partitions=1)
    clicks = [{"event_id": f"k{i}", "event_type": "click", "occurred_at": f"2026-10-0{i + 1}T23:59:59.5+08:00",
               "source": "bot", "schema_version": 1, "promoter_id": "P1", "share_id": "S1", "buyer_id": "买家一",
               "device_id": "D1", "sku_id": "SKU1", "channel": "bot_push", "user_agent": "GroupBot/2.0",
               "ip": "198.51.100.9"} for i in range(3)]
    lines = b"".join(b"buyer-1\t" + encode(c) + b"\n" for c in clicks) + b"buyer-1\t{\"event_type\": \"click\"\n"
    proc = subprocess.run(["kcat", "-P", "-b", cfg.kafka.bootstrap_servers, "-t", cfg.kafka.topics.clicks,
                           "-K", "\t", "-X", "acks=all"], input=lines, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    run_o2p("--config", str(cfg_file), "--home", str(cfg.home_path), "capture", "--until-idle", env=SALT)
    rows = ds.dataset(cfg.landing_path / "clicks", format="parquet", partitioning="hive").to_table().to_pylist()
    assert sorted((r["event_id"], str(r["event_date"]), r["buyer_id"], r["_offset"]) for r in rows) == [
        ("k0", "2026-10-01", "买家一", 0), ("k1", "2026-10-02", "买家一", 1), ("k2", "2026-10-03", "买家一", 2)]
    assert all(r["ip_hash"] and "198.51.100.9" not in r["ip_hash"] for r in rows)
    offsets, _, reasons = landed(cfg)
    assert offsets == every_offset_once(cfg)
    assert list(reasons.values()) == ["not valid UTF-8 JSON: EOF while parsing an object at line 1 column 22"]


def test_two_consumers_share_the_partitions_and_sigterm_flushes_and_exits_0(broker, tmp_path):
    cfg, cfg_file = make_cfg(broker, tmp_path, "  flush_records: 2000\n  flush_seconds: 30\n")
    world = build_world(orders=8_000, seed=9)
    events = [e for k, e in messages(world) if k == "event"]
    a = capture_proc(cfg_file, cfg)
    request_kill_at_exit(a)
    with EventPublisher(cfg) as pub:
        for e in events[: len(events) // 2]:
            pub.publish(e)
    b = capture_proc(cfg_file, cfg)
    request_kill_at_exit(b)
    deadline = time.monotonic() + 60
    while len({r["owner"] for r in capture_health(cfg) if r["owner"]}) < 2:   # the group has rebalanced
        assert time.monotonic() < deadline, capture_health(cfg)
        time.sleep(0.2)
    owners = {r["owner"].split()[1] for r in capture_health(cfg) if r["owner"]}
    assert owners == {str(a.pid), str(b.pid)}
    with EventPublisher(cfg) as pub:
        for e in events[len(events) // 2:]:
            pub.publish(e)
    time.sleep(1)
    a.send_signal(signal.SIGTERM)            # flush_seconds is 30: only the SIGTERM flush lands A's buffers
    assert a.wait(timeout=30) == 0
    deadline = time.monotonic() + 90
    while any(r["lag"] for r in capture_health(cfg, log_offsets(cfg))):   # B takes A's partitions over
        assert time.monotonic() < deadline, capture_health(cfg, log_offsets(cfg))
        time.sleep(0.5)
    b.send_signal(signal.SIGINT)
    assert b.wait(timeout=30) == 0
    offsets, event_ids, _ = landed(cfg)
    assert offsets == every_offset_once(cfg)
    assert event_ids == Counter(e["event_id"] for e in events)
    assert not any(r["owner"] for r in capture_health(cfg))     # both let their locks go
    status = run_o2p("--config", str(cfg_file), "--home", str(cfg.home_path), "capture", "--status").stdout
    assert f"{cfg.kafka.topics.clicks}[0]" in status and "none" in status

    # the Dagster UI sees the same through the capture_health_sensor's observations
    from dagster import build_sensor_context

    from pipelines.definitions import defs
    from pipelines.resources import O2PConfig

    sensor = defs.get_sensor_def("capture_health_sensor")
    with build_sensor_context(resources={"o2p": O2PConfig(config_path=str(cfg_file), home=str(cfg.home_path))}) as ctx:
        result = sensor(ctx)
    from dagster import AssetCheckEvaluation, AssetObservation

    obs = {e.asset_key.to_user_string(): e.metadata for e in result.asset_events if isinstance(e, AssetObservation)}
    assert set(obs) == {"landing/clicks", "landing/orders", "landing/refunds"}
    # and judges the landing freshness check: no lag, so fresh
    fresh = {e.asset_key.to_user_string(): (e.check_name, e.passed, e.description)
             for e in result.asset_events if isinstance(e, AssetCheckEvaluation)}
    assert fresh == {k: ("landing_fresh", True, "no lag: everything published has landed") for k in obs}
    by_asset = Counter({"click": "landing/clicks", "refund": "landing/refunds"}.get(e["event_type"], "landing/orders")
                      for e in events)
    for key, meta in obs.items():
        assert meta["lag"].value == 0 and meta["owned_partitions"].value == 0
        assert meta["consumed"].value == meta["landed"].value == by_asset[key]
        assert "| 2 |" in meta["partitions"].value


def test_publisher_raises_what_the_broker_did_not_acknowledge(broker, tmp_path):
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    from streaming.producer import PublishError

    cfg, _ = make_cfg(broker, tmp_path, partitions=1)
    small = f"{cfg.kafka.topics.clicks}.small"
    admin = KafkaAdminClient(bootstrap_servers=cfg.kafka.bootstrap_servers)
    admin.create_topics([NewTopic(small, 1, 1, topic_configs={"max.message.bytes": "1000"})])
    admin.close()
    pub = EventPublisher(cfg)
    pub.publish_raw(small, b"x" * 100)
    pub.publish_raw(small, b"y" * 5000)          # over the topic's limit: refused by the broker
    with pytest.raises(PublishError, match=r"^1 event\(s\) were not acknowledged by the broker") as err:
        pub.close()
    assert len(err.value.failed) == 1


def salted_masker(cfg):
    """The capture sink's IP masker, with the salt the tests give capture (SALT)."""
    from streaming.privacy import IpMasker, ip_hasher

    env = cfg.capture.ip_salt_env
    saved = os.environ.get(env)
    os.environ[env] = SALT["O2P_IP_SALT"]
    try:
        return IpMasker(ip_hasher(cfg))
    finally:
        if saved is None:
            del os.environ[env]
        else:
            os.environ[env] = saved


def test_no_raw_ip_at_rest_and_events_from_the_future_are_dead_letters(broker, tmp_path):
    """Rulebook §1 (v2): a click dated after its capture by more than quality.max_future_seconds
    is a dead letter (`occurred_in_future`) and creates no day partition; and raw IPs are kept by
    the source topics only: not in the landing zone (valid rows hold a salted hash), not in dead
    letters (Parquet or the dead-letter topic), nowhere under O2P_HOME."""
    from datetime import UTC, datetime, timedelta

    from kafka import KafkaConsumer

    from o2p.timeutil import SHANGHAI
    from tests.at_rest import files_holding

    cfg, cfg_file = make_cfg(broker, tmp_path, partitions=2)
    t = cfg.kafka.topics
    assert cfg.quality.max_future_seconds == 300

    def click(eid, ip, **kw):
        return {"event_id": eid, "event_type": "click", "occurred_at": "2026-11-20T10:00:00+08:00",
                "source": "storefront", "schema_version": 1, "promoter_id": "P1", "share_id": "S1",
                "buyer_id": f"B-{eid}", "device_id": f"D-{eid}", "sku_id": "SKU1", "channel": "group",
                "user_agent": "Mozilla/5.0 (iPhone) MicroMessenger/8.0.47.2560 Chrome/120.0.6099.109",
                "ip": ip, **kw}

    # just inside quality.max_future_seconds (300) at publication, so at capture (later) too
    soon = (datetime.now(UTC) + timedelta(seconds=290)).astimezone(SHANGHAI)
    ips = {
        "valid_v4": "203.0.113.10", "valid_v6": "2001:db8::10", "valid_mapped": "::ffff:203.0.113.11",
        "valid_full": "2001:0db8:0000:0000:0000:ff00:0042:8329", "inside": "203.0.113.12",
        "invalid": "198.51.100.20", "text_v4": "198.51.100.21", "text_v6": "2001:db8::21",
        "future": "198.51.100.22", "bytes": "198.51.100.23", "etype": "198.51.100.24", "key": "198.51.100.25",
        "long": "198.51.100.26", "mapped_dead": "::ffff:198.51.100.27",
    }
    valid = [click("v1", ips["valid_v4"]), click("v2", ips["valid_v6"]), click("v3", ips["valid_mapped"]),
             click("v4", ips["valid_full"]),
             click("inside", ips["inside"], occurred_at=soon.isoformat(timespec="seconds"))]
    bad = [
        (t.clicks, None, encode(click("d1", ips["invalid"], channel="tv"))),
        (t.clicks, None, f"client {ips['text_v4']} sent [{ips['text_v6']}]:443 GET /?x=1".encode()),
        (t.clicks, None, encode(click("d3", ips["future"], occurred_at="2099-01-01T00:00:00+08:00"))),
        (t.clicks, None, b"\xff\xfe\x81 ip=" + ips["bytes"].encode() + b" \xc3( 10:00:00"),
        (t.clicks, None, encode(click("d5", ips["mapped_dead"], event_type=ips["etype"]))),
        (t.clicks, ips["key"].encode(), b"{not json"),
        (t.clicks, None, encode(click("d7", ", ".join([ips["long"]] * 6)))),
        (t.orders, None, encode(click("d8", ips["mapped_dead"]))),                       # wrong topic
    ]
    with EventPublisher(cfg) as pub:
        for e in valid:
            pub.publish(e)
        for topic, key, raw in bad:
            pub.publish_raw(topic, raw, key=key)
    run_o2p("--config", str(cfg_file), "--home", str(cfg.home_path), "capture", "--until-idle", env=SALT)

    offsets, event_ids, reasons = landed(cfg)
    assert offsets == every_offset_once(cfg)
    assert event_ids == Counter(e["event_id"] for e in valid)      # just inside max_future_seconds: landed
    assert len(reasons) == len(bad)
    future = [r for r in reasons.values() if r.startswith("occurred_in_future:")]
    assert len(future) == 1 and future[0].startswith("occurred_in_future: occurred_at 2099-01-01T00:00:00+08:00 is ")
    assert future[0].endswith(" days after its capture (quality.max_future_seconds = 300)")
    assert not list(cfg.landing_path.rglob("event_date=2099-01-01"))
    days = sorted(p.name for p in (cfg.landing_path / "clicks").iterdir())
    assert days == sorted({"event_date=2026-11-20", f"event_date={soon.date().isoformat()}"})

    # valid clicks keep the salted hash only; dead letters name it by its prefix
    mask = salted_masker(cfg)
    rows = ds.dataset(cfg.landing_path / "clicks", format="parquet").to_table().to_pylist()
    hashes = {r["event_id"]: r["ip_hash"] for r in rows}
    assert hashes["v1"] == mask.hasher(ips["valid_v4"]) and "ip" not in rows[0]
    dead_raw = b"".join(reasons)
    for name in ("invalid", "text_v4", "text_v6", "future", "bytes", "mapped_dead"):
        assert mask.mask_for(ips[name]).encode() in dead_raw, name
    assert any(mask.mask_for(ips["etype"]) in r for r in reasons.values())

    # every file under O2P_HOME, except the source topics' own log segments if the broker lives here
    source_dirs = []
    broker_data = broker.home_path / "broker" / "data"
    if broker_data.resolve().is_relative_to(cfg.home_path.resolve()):
        source_dirs = [broker_data / f"{topic}-{p}" for topic in (t.clicks, t.orders, t.refunds)
                       for p in range(cfg.kafka.partitions)]
    needles = [*ips.values(), "203.0.113.1", "198.51.100.2", "2001:db8:", "0042:8329"]
    found = files_holding(cfg.home_path, [n.encode(enc) for n in needles for enc in ("utf-8", "utf-16-le")],
                          skip=lambda path: any(path.is_relative_to(d) for d in source_dirs))
    assert found == []
    assert len(list(cfg.landing_path.rglob("*.parquet"))) >= 3       # clicks (2 days) and dead letters

    # and the dead-letter topic: values, keys and headers
    dlq = KafkaConsumer(t.deadletter, bootstrap_servers=cfg.kafka.bootstrap_servers, auto_offset_reset="earliest",
                        enable_auto_commit=False, consumer_timeout_ms=5000)
    msgs, deadline = [], time.monotonic() + 30
    while len(msgs) < len(bad) and time.monotonic() < deadline:
        msgs += [m for recs in dlq.poll(timeout_ms=500).values() for m in recs]
    dlq.close()
    assert len(msgs) >= len(bad)
    assert {m.value for m in msgs} == set(reasons)
    for m in msgs:
        for part in (m.key or b"", m.value or b"", *(v for _, v in m.headers)):
            for ip in needles:
                assert ip.encode() not in part, (ip, m)
