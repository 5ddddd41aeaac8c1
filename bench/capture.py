"""Capture throughput and freshness against a bare poll loop, in the same run.

    .venv/bin/python bench/capture.py                 # 1M events, scratch broker on loopback
    .venv/bin/python bench/capture.py --events 200000 --live-seconds 10

1. A scratch KRaft broker starts on a free loopback port pair (stopped at the end).
2. N simulated events (storefront and bot traffic, with 1 % malformed, 3 % retries and 1 %
   late) are published with kafka-python, acks=all.
3. (a) a bare kafka-python poll loop that only counts messages and bytes, and (b) the capture
   path (validate, hash IPs, write Parquet, fsync, state file, rename, commit) each read the
   whole backlog with their own consumer group, with the same fetch settings. Capture's
   landing zone is then counted: every offset must be there exactly once.
4. Freshness: a child process publishes at a steady rate while capture runs with its default
   flush policy; publish→landed latency is the Kafka record timestamp (CreateTime, set by the
   producer) against the wall clock just after the batch's rename.

The machine is shared and noisy (2 cores): read the ratio, not the absolute figures.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from o2p.config import Config  # noqa: E402
from streaming import broker as kb  # noqa: E402
from streaming.capture.consumer import Capture  # noqa: E402
from streaming.producer import encode, route  # noqa: E402
from streaming.simulate import build_world, messages  # noqa: E402

FETCH = dict(max_poll_records=5000, fetch_max_bytes=64 * 1024 * 1024,
             max_partition_fetch_bytes=8 * 1024 * 1024)


def encoded(cfg: Config, world) -> list[tuple[str, bytes | None, bytes]]:
    out = []
    for kind, msg in messages(world):
        if kind == "event":
            topic, key = route(cfg, msg)
            out.append((topic, key, encode(msg)))
        else:
            out.append((getattr(cfg.kafka.topics, kind), None, msg))
    return out


def publish(bootstrap: str, msgs, rate: float | None = None) -> float:
    from kafka import KafkaProducer

    prod = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=256 * 1024,
                         client_id="bench-publisher")
    t0 = time.perf_counter()
    for i, (topic, key, value) in enumerate(msgs):
        if rate and i % 100 == 0:
            ahead = i / rate - (time.perf_counter() - t0)
            if ahead > 0:
                time.sleep(ahead)
        prod.send(topic, key=key, value=value)
    prod.flush()
    prod.close()
    return time.perf_counter() - t0


def bare_poll(cfg: Config, expected: int) -> tuple[float, int, int]:
    from kafka import KafkaConsumer

    t = cfg.kafka.topics
    cons = KafkaConsumer(t.clicks, t.orders, t.refunds, bootstrap_servers=cfg.kafka.bootstrap_servers,
                         group_id=f"bench-bare-{uuid.uuid4().hex[:8]}", enable_auto_commit=False,
                         auto_offset_reset="earliest", **FETCH)
    n = nbytes = 0
    t0 = time.perf_counter()
    while n < expected:
        for recs in cons.poll(timeout_ms=500).values():
            n += len(recs)
            for r in recs:
                nbytes += len(r.value)
    elapsed = time.perf_counter() - t0
    cons.close(autocommit=False)
    return elapsed, n, nbytes


def count_landed(landing: Path) -> tuple[int, int]:
    import pyarrow.dataset as ds

    rows = dead = 0
    for table in ("clicks", "orders", "refunds"):
        if (landing / table).is_dir():
            rows += ds.dataset(landing / table, format="parquet", partitioning="hive").count_rows()
    if (landing / "deadletters").is_dir():
        dead = ds.dataset(landing / "deadletters", format="parquet", partitioning="hive").count_rows()
    return rows, dead


def distinct_offsets(landing: Path) -> int:
    import duckdb

    glob = f"{landing}/*/*/*.parquet"
    return duckdb.sql(
        f"select count(*) from (select distinct _topic, _partition, _offset from read_parquet('{glob}', union_by_name=true))"
    ).fetchall()[0][0]


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of a running process so far (0 when unknown)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, TypeError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_of_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def percentile(sorted_values: list[int], q: float) -> int:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000, help="events in the backlog (default 1M)")
    ap.add_argument("--rate", type=float, default=20_000, help="events/s published in the freshness phase")
    ap.add_argument("--live-seconds", type=float, default=15, help="length of the freshness phase (s)")
    ap.add_argument("--partitions", type=int, default=3, help="partitions per topic (default 3)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="o2p-bench-") as tmp, \
            kb.scratch_broker(Path(tmp), f"  partitions: {args.partitions}\n", log=lambda *_: None) as cfg:
        orders = max(1, int(args.events / 4.75))
        t0 = time.perf_counter()
        world = build_world(orders=orders, seed=11)
        msgs = encoded(cfg, world)
        print(f"simulated {len(msgs)} messages ({len(world.malformed)} malformed) in {time.perf_counter() - t0:.1f} s")
        total = len(msgs)
        mb = sum(len(v) for _, _, v in msgs) / 1e6
        pub_s = publish(cfg.kafka.bootstrap_servers, msgs)
        del world

        broker = kb._pid(cfg)   # the scratch one-node broker
        cpu = {"bare": (time.process_time(), cpu_seconds(broker))}
        bare_s, bare_n, bare_bytes = bare_poll(cfg, total)
        cpu["bare"] = (time.process_time() - cpu["bare"][0], cpu_seconds(broker) - cpu["bare"][1], 0.0)
        cap = Capture(cfg, group_id="bench-capture", echo=lambda *_: None)
        t1 = time.perf_counter()
        before = (time.process_time(), cpu_seconds(broker), cpu_of_children())
        cap.run(until_idle=True)   # the sink process has exited (and been reaped) when this returns
        cpu["capture"] = (time.process_time() - before[0], cpu_seconds(broker) - before[1],
                          cpu_of_children() - before[2])
        cap_s = time.perf_counter() - t1
        rows, dead = count_landed(cfg.landing_path)
        distinct = distinct_offsets(cfg.landing_path)

        rows_table = [
            ("publish (kafka-python, acks=all)", total, pub_s, mb),
            ("(a) bare poll loop, count only", bare_n, bare_s, bare_bytes / 1e6),
            ("(b) capture → Parquet landing", rows + dead, cap_s, mb),
        ]
        print(f"\n{'phase':<36}{'events':>10}{'seconds':>10}{'events/s':>12}{'MB/s':>9}")
        for name, n, s, m in rows_table:
            print(f"{name:<36}{n:>10}{s:>10.2f}{n / s:>12.0f}{m / s:>9.1f}")
        ratio = (total / cap_s) / (total / bare_s)
        print(f"\nratio capture / bare poll: {ratio:.2f}   (target ≥ 0.75)")
        print("\nwhere capture's time went (wall seconds; the two processes run at the same time):")
        steps = [("consumer", k, v) for k, v in cap.seconds.items()]
        steps += [("consumer", k, v) for k, v in getattr(cap.sink, "seconds", {}).items()]
        steps += [("sink", k, v) for k, v in cap.sink_seconds.items()]
        for who, k, v in steps:
            print(f"  {who:<9}{k:<32}{v:>8.2f}" if "files written" not in k else f"  {who:<9}{k:<32}{v:>8.0f}")
        print("CPU seconds (user + system), against the wall seconds above:")
        for name, (own, brk, sink) in cpu.items():
            print(f"  {name:<9}this process {own:6.2f}   sink process {sink:6.2f}   broker {brk:6.2f}   "
                  f"total {own + sink + brk:6.2f}")
        ok = rows + dead == total == distinct
        print(f"landed {rows} rows + {dead} dead letters = {rows + dead} of {total} published; "
              f"distinct (topic, partition, offset): {distinct} -> {'exactly once' if ok else 'MISMATCH'}")

        # freshness: a steady publisher in a child process while capture runs with defaults
        live = max(1, int(args.rate * args.live_seconds))
        live_world = build_world(orders=max(1, int(live / 4.75)), seed=12, malformed_share=0.0)
        live_msgs = encoded(cfg, live_world)[:live]
        fresh_cap = Capture(cfg, group_id="bench-capture", echo=lambda *_: None)
        fresh_cap.freshness_ms = []
        child = mp.get_context("spawn").Process(target=publish, args=(cfg.kafka.bootstrap_servers, live_msgs, args.rate))
        child.start()
        fresh_cap.run(max_seconds=args.live_seconds + cfg.capture.flush_seconds + 10)
        child.join()
        lat = sorted(fresh_cap.freshness_ms)
        if lat:
            print(f"\nfreshness publish→landed at {args.rate:.0f} events/s for {args.live_seconds:.0f} s "
                  f"(flush_seconds={cfg.capture.flush_seconds}, flush_records={cfg.capture.flush_records}): "
                  f"p50 {percentile(lat, 0.5)} ms, p99 {percentile(lat, 0.99)} ms, max {lat[-1]} ms "
                  f"over {len(lat)} of {len(live_msgs)} events")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
