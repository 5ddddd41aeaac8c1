"""Faults on the local Kafka cluster (the `kafka_cluster` fixture): who leads a partition, who
is the active controller, killing a node with -9, and putting the cluster back together."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter

from o2p.config import Config
from streaming import broker as kb


def _admin(cfg: Config):
    from kafka import KafkaAdminClient

    return KafkaAdminClient(bootstrap_servers=cfg.kafka.bootstrap_servers, client_id="o2p-test-faults",
                            request_timeout_ms=10000)


def partition_leader(cfg: Config, topic: str, partition: int) -> int:
    admin = _admin(cfg)
    try:
        (desc,) = admin.describe_topics([topic])
        return next(p["leader_id"] for p in desc["partitions"] if p["partition_index"] == partition)
    finally:
        admin.close()


def active_controller(cfg: Config) -> int:
    """The leader of the KRaft metadata quorum (DescribeQuorum, what `kafka-metadata-quorum
    describe --status` prints as LeaderId), asked through any broker."""
    admin = _admin(cfg)
    try:
        quorum = admin.describe_metadata_quorum()
        return quorum["topics"][0]["partitions"][0]["leader_id"]
    finally:
        admin.close()


def replica_counts(cfg: Config, topic: str) -> set[int]:
    """The replication factor of each partition of `topic` (one number when all agree)."""
    admin = _admin(cfg)
    try:
        (desc,) = admin.describe_topics([topic])
        return {len(p["replica_nodes"]) for p in desc["partitions"]}
    finally:
        admin.close()


def kill_node(cfg: Config, node: int) -> int:
    """kill -9 of one node (a broker and a controller); returns its pid."""
    pid = kb.node_pid(cfg, node)
    assert pid is not None, f"node {node} is not running"
    os.killpg(pid, signal.SIGKILL)
    while kb._alive(pid):
        time.sleep(0.05)
    (kb._node_dir(cfg, node) / "node.pid").unlink(missing_ok=True)
    return pid


def kill_all(cfg: Config) -> None:
    for node in range(1, len(kb.nodes(cfg)) + 1):
        if kb.node_pid(cfg, node):
            kill_node(cfg, node)


def restore(cfg: Config, timeout: float = 90) -> float:
    """Start every node that is not running and wait until each partition of every topic has all
    its replicas in sync again (so the next test starts from a whole cluster); returns seconds."""
    started = time.monotonic()
    kb.up(cfg, log=lambda *_: None)
    deadline = started + timeout
    lagging: list = []
    while time.monotonic() < deadline:
        try:
            admin = _admin(cfg)
            try:
                topics = [t for t in admin.list_topics() if not t.startswith("__")]
                lagging = [(d["name"], p["partition_index"]) for d in admin.describe_topics(topics)
                           for p in d["partitions"] if sorted(p["isr_nodes"]) != sorted(p["replica_nodes"])]
            finally:
                admin.close()
            if not lagging:
                return time.monotonic() - started
        except Exception as exc:   # noqa: BLE001 - retried until the deadline
            lagging = [repr(exc)]
        time.sleep(0.5)
    raise AssertionError(f"the cluster did not get every replica back in sync within {timeout:.0f} s: {lagging[:5]}")


def read_back(cfg: Config) -> dict[tuple[str, int, int], str | None]:
    """Every record of the three event topics read back from the log: (topic, partition, offset)
    → event_id (None for a message that is not an event)."""
    from kafka import KafkaConsumer, TopicPartition

    from streaming.health import log_offsets

    ends = log_offsets(cfg)
    assert ends is not None, "the cluster cannot be reached"
    cons = KafkaConsumer(bootstrap_servers=cfg.kafka.bootstrap_servers, enable_auto_commit=False,
                         client_id="o2p-test-read-back", max_poll_records=5000)
    out: dict = {}
    try:
        tps = [TopicPartition(t, p) for (t, p), (b, e) in ends.items() if e > b]
        cons.assign(tps)
        for tp in tps:
            cons.seek(tp, ends[(tp.topic, tp.partition)][0])
        remaining = {tp for tp in tps}
        deadline = time.monotonic() + 120
        while remaining and time.monotonic() < deadline:
            for tp, recs in cons.poll(timeout_ms=500).items():
                for r in recs:
                    try:
                        eid = json.loads(r.value).get("event_id")
                    except (ValueError, AttributeError):
                        eid = None
                    out[(tp.topic, tp.partition, r.offset)] = eid
                if cons.position(tp) >= ends[(tp.topic, tp.partition)][1]:
                    remaining.discard(tp)
        assert not remaining, f"could not read back {remaining}"
    finally:
        cons.close()
    return out


def landed_by_offset(cfg: Config) -> tuple[dict, Counter]:
    """(topic, partition, offset) → event_id of every landed row and dead letter (None for a dead
    letter), and how many times each offset landed."""
    import pyarrow.dataset as ds

    by_offset, times = {}, Counter()
    for table in ("clicks", "orders", "refunds", "deadletters"):
        root = cfg.landing_path / table
        if not root.is_dir():
            continue
        cols = ["_topic", "_partition", "_offset"] + ([] if table == "deadletters" else ["event_id"])
        for r in ds.dataset(root, format="parquet").to_table(columns=cols).to_pylist():
            key = (r["_topic"], r["_partition"], r["_offset"])
            times[key] += 1
            by_offset[key] = r.get("event_id")
    return by_offset, times
