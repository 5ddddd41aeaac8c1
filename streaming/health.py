"""Capture health, per topic partition: what was landed (the state files, the commit points),
how far behind the log end it is (the broker's end offsets), and which process owns it (the
partition lock). Shown by `o2p capture --status` and, in the Dagster UI, as observations of
the landing assets (`capture_health_sensor`)."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from o2p.config import Config
from o2p.layout import read_states, state_lock


def _owner(lock: Path) -> str | None:
    """The holder of a partition lock ('pid N on host'), or None when nobody holds it."""
    try:
        fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    except BlockingIOError:
        return os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
    finally:
        os.close(fd)


def log_offsets(cfg: Config, timeout_ms: int = 5000) -> dict[tuple[str, int], tuple[int, int]] | None:
    """(topic, partition) → (beginning, end) offsets on the broker; None when it cannot be reached."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import KafkaConnectionError, KafkaTimeoutError

    from streaming.broker import listening

    unreachable = (KafkaConnectionError, KafkaTimeoutError)
    t = cfg.kafka.topics
    if not listening(cfg):   # a stopped broker: say so at once, not after the client's timeouts
        return None
    try:
        cons = KafkaConsumer(bootstrap_servers=cfg.kafka.bootstrap_servers, client_id="o2p-health",
                             enable_auto_commit=False, request_timeout_ms=timeout_ms + 1000)
    except unreachable:
        return None
    try:
        tps = [TopicPartition(topic, p) for topic in (t.clicks, t.orders, t.refunds)
               for p in sorted(cons.partitions_for_topic(topic) or ())]
        begin, end = cons.beginning_offsets(tps, timeout_ms=timeout_ms), cons.end_offsets(tps, timeout_ms=timeout_ms)
        return {(tp.topic, tp.partition): (begin[tp], end[tp]) for tp in tps}
    except unreachable:
        return None
    finally:
        cons.close()


def capture_health(cfg: Config, offsets: dict | None = None, now: float | None = None) -> list[dict]:
    """One row per partition known to the broker or to the landing zone."""
    now = time.time() if now is None else now
    states = {(s["topic"], s["partition"]): s for s in read_states(cfg.landing_path)}
    rows = []
    for key in sorted(set(states) | set(offsets or {})):
        s = states.get(key, {})
        begin, end = (offsets or {}).get(key, (None, None))
        nxt = s.get("next_offset", begin)
        updated = s.get("updated_at_us")
        rows.append({
            "topic": key[0], "partition": key[1],
            "next_offset": nxt, "end_offset": end,
            "lag": None if end is None or nxt is None else max(0, end - nxt),
            "consumed": s.get("consumed", 0), "landed": s.get("landed", 0),
            "dead_lettered": s.get("dead_lettered", 0),
            "last_flush_age_s": None if updated is None else round(now - updated / 1e6, 1),
            "gaps": s.get("gaps", []),
            "owner": _owner(state_lock(cfg.landing_path, *key)),
        })
    return rows


def format_table(rows: list[dict]) -> str:
    head = f"{'partition':<24}{'next':>10}{'end':>10}{'lag':>9}{'consumed':>11}{'landed':>10}{'dead':>7}{'flushed':>10}  owner"
    out = [head]
    for r in rows:
        age = "-" if r["last_flush_age_s"] is None else f"{r['last_flush_age_s']:.0f}s ago"
        out.append(
            f"{r['topic'] + '[' + str(r['partition']) + ']':<24}{_n(r['next_offset']):>10}{_n(r['end_offset']):>10}"
            f"{_n(r['lag']):>9}{r['consumed']:>11}{r['landed']:>10}{r['dead_lettered']:>7}{age:>10}  "
            f"{r['owner'] or 'none'}" + (f"  GAPS {r['gaps']}" if r["gaps"] else ""))
    return "\n".join(out)


def _n(v) -> str:
    return "?" if v is None else str(v)
