"""A rebalance storm on a three-node Kafka cluster: capture processes killed and started every
few seconds over a large backlog, then every offset must be landed exactly once.

    .venv/bin/python bench/storm.py                      # 1M events, scratch 3-node cluster on loopback
    .venv/bin/python bench/storm.py --events 60000 --storm-seconds 30 --interval 2
    .venv/bin/python bench/storm.py --bootstrap 127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096 --json

1. A scratch KRaft cluster of three combined nodes starts on free loopback ports (or
   `--bootstrap` names a running one); the topics get replication factor 3 and
   min.insync.replicas 2 (`streaming.broker.ensure_topics`).
2. Half of N events (clicks keyed by buyer, order_paid keyed by order) is published with
   acks=all and idempotence; the other half is published by a child process *during* the storm,
   spread over `--storm-seconds` (at most as fast as one producer goes).
3. The storm: up to `--processes` `o2p capture` processes of one consumer group. Every
   `--interval` seconds (± 50 %) one is started (when fewer than that run) or one is killed,
   with -9 or SIGTERM at random (when they all run; with one left, one is started). Each action
   prints the events landed since the last one and the rate.
4. After `--storm-seconds` and once the publisher is done, the survivors get SIGTERM (each must
   exit 0) and one `o2p capture --until-idle` lands the rest.
5. Checks: every offset of the log landed exactly once (the landing zone's
   (topic, partition, offset) against the log's begin/end offsets), every published event_id
   landed once, and the group's committed offsets (what `kafka-consumer-groups` shows) at the
   log ends.

The last line is a JSON summary (`--json` prints only it). Exit 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from o2p.config import Config, load_config  # noqa: E402
from streaming import broker as kb  # noqa: E402
from streaming.health import capture_health, log_offsets  # noqa: E402

ENV = {**os.environ, "O2P_IP_SALT": os.environ.get("O2P_IP_SALT", "storm-salt")}


def events(n: int, seed: int) -> list[tuple[str, bytes, bytes]]:
    """(table, key, value): 85 % clicks keyed by buyer, 15 % order_paid keyed by order, unique ids."""
    rng = random.Random(seed)
    run = uuid.uuid4().hex[:8]
    out = []
    for i in range(n):
        day = 1 + i % 28
        buyer = f"B{rng.randrange(200_000)}"
        if rng.random() < 0.85:
            value = (f'{{"event_id":"s{run}-c{i}","event_type":"click","occurred_at":"2026-10-{day:02d}T10:'
                     f'{i % 60:02d}:00+08:00","source":"storefront","schema_version":1,"promoter_id":"P{i % 997}",'
                     f'"share_id":"S{i}","buyer_id":"{buyer}","device_id":"D{i % 50021}","sku_id":"SKU{i % 31}",'
                     f'"channel":"group"}}')
            out.append(("clicks", buyer.encode(), value.encode()))
        else:
            order = f"O{run}-{i}"
            value = (f'{{"event_id":"s{run}-o{i}","event_type":"order_paid","occurred_at":"2026-10-{day:02d}T11:'
                     f'{i % 60:02d}:00+08:00","source":"storefront","schema_version":1,"order_id":"{order}",'
                     f'"buyer_id":"{buyer}","currency":"CNY","lines":[{{"line_id":"L1","sku_id":"SKU1",'
                     f'"quantity":1,"unit_price_fen":1990,"discount_fen":0,"paid_fen":1990}}]}}')
            out.append(("orders", order.encode(), value.encode()))
    return out


def publish(bootstrap: str, topics: dict, msgs, rate: float | None = None) -> float:
    """Send with acks=all and idempotence (at `rate` events/s at most); exit on a failed send."""
    from kafka import KafkaProducer

    prod = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=20,
                         batch_size=256 * 1024, client_id="storm-publisher")
    t0 = time.perf_counter()
    failed = []
    for i, (table, key, value) in enumerate(msgs):
        if rate and i % 500 == 0 and (ahead := i / rate - (time.perf_counter() - t0)) > 0:
            time.sleep(ahead)
        prod.send(topics[table], key=key, value=value).add_errback(failed.append)
    prod.flush()
    prod.close()
    if failed:
        raise SystemExit(f"{len(failed)} messages were not acknowledged: {failed[0]}")
    return time.perf_counter() - t0


def make_config(home: Path, bootstrap: str, partitions: int) -> tuple[Config, Path]:
    name = f"storm{uuid.uuid4().hex[:6]}"
    cfg_file = home / "o2p.yaml"
    cfg_file.write_text(
        f'kafka:\n  bootstrap_servers: "{bootstrap}"\n  local_broker: false\n  partitions: {partitions}\n'
        f"  consumer_group: {name}\n  topics: {{clicks: {name}.clicks, orders: {name}.orders, "
        f"refunds: {name}.refunds, deadletter: {name}.deadletter}}\n"
        "capture:\n  session_timeout_ms: 6000\n  lock_timeout_seconds: 120\n"
        "quality:\n  max_event_age_days: 36500\n")
    cfg = load_config(cfg_file, home=home)
    kb.ensure_topics(cfg)
    return cfg, cfg_file


def landed_count(cfg: Config) -> int:
    return sum(r["landed"] + r["dead_lettered"] for r in capture_health(cfg))


def landed_offsets_and_ids(cfg: Config) -> tuple[Counter, Counter]:
    import pyarrow.dataset as ds

    offsets, ids = Counter(), Counter()
    for table in ("clicks", "orders", "refunds", "deadletters"):
        root = cfg.landing_path / table
        if not root.is_dir():
            continue
        cols = ["_topic", "_partition", "_offset"] + ([] if table == "deadletters" else ["event_id"])
        t = ds.dataset(root, format="parquet").to_table(columns=cols)
        offsets.update(zip(t["_topic"].to_pylist(), t["_partition"].to_pylist(), t["_offset"].to_pylist(), strict=True))
        if table != "deadletters":
            ids.update(t["event_id"].to_pylist())
    return offsets, ids


def group_committed(cfg: Config) -> dict:
    from kafka import KafkaConsumer
    from kafka.structs import TopicPartition

    c = KafkaConsumer(bootstrap_servers=cfg.kafka.bootstrap_servers, group_id=cfg.kafka.consumer_group,
                      enable_auto_commit=False)
    try:
        return {(t, p): c.committed(TopicPartition(t, p)) for (t, p) in log_offsets(cfg)}
    finally:
        c.close(autocommit=False)


class Storm:
    def __init__(self, cfg: Config, cfg_file: Path, processes: int, rng: random.Random, say):
        self.cfg, self.cfg_file, self.processes, self.rng, self.say = cfg, cfg_file, processes, rng, say
        self.live: list[subprocess.Popen] = []
        self.starts = self.kill9 = self.sigterm = 0
        # (pid, code) of a SIGTERMed process that did not exit 0, or of one that died by itself;
        # −15 is a SIGTERM that came before capture installed its handler (during Python's start-up)
        self.bad_exits: list = []

    def start(self) -> None:
        log = open(self.cfg.home_path / f"capture-{self.starts + 1}.log", "w")
        self.live.append(subprocess.Popen(
            [sys.executable, "-m", "o2p.cli", "--config", str(self.cfg_file), "--home", str(self.cfg.home_path),
             "capture"], cwd=REPO, env=ENV, stdout=log, stderr=subprocess.STDOUT))
        self.starts += 1

    def kill(self) -> str:
        p = self.live.pop(self.rng.randrange(len(self.live)))
        if self.rng.random() < 0.5:
            p.kill()
            p.wait()
            self.kill9 += 1
            return f"kill -9 {p.pid}"
        p.send_signal(signal.SIGTERM)
        code = p.wait(timeout=120)
        self.sigterm += 1
        if code != 0:
            self.bad_exits.append((p.pid, code))
        return f"SIGTERM {p.pid} → exit {code}"

    def act(self) -> str:
        self.reap()
        if len(self.live) < self.processes and (len(self.live) <= 1 or self.rng.random() < 0.5):
            self.start()
            return f"start ({len(self.live)} running)"
        return self.kill() + f" ({len(self.live)} running)"

    def reap(self) -> None:
        for p in list(self.live):
            if p.poll() is not None:   # died on its own: a failure of capture
                self.live.remove(p)
                self.bad_exits.append((p.pid, p.returncode))

    def stop_all(self) -> None:
        for p in self.live:
            p.send_signal(signal.SIGTERM)
        for p in self.live:
            code = p.wait(timeout=120)
            self.sigterm += 1
            if code != 0:
                self.bad_exits.append((p.pid, code))
        self.live = []


def run(args, bootstrap: str, home: Path, say) -> dict:
    cfg, cfg_file = make_config(home, bootstrap, args.partitions)
    t = cfg.kafka.topics
    topics = {"clicks": t.clicks, "orders": t.orders}
    msgs = events(args.events, args.seed)
    published = Counter(json.loads(v)["event_id"] for _, _, v in msgs)
    half = len(msgs) // 2
    pub_s = publish(bootstrap, topics, msgs[:half])
    say(f"published {half} events before the storm in {pub_s:.1f} s ({half / pub_s:.0f}/s, acks=all, idempotent)")
    # the other half at a steady rate over the storm (or as fast as it goes), so batches are being
    # landed whenever a process is killed
    rate = (len(msgs) - half) / args.storm_seconds
    child = mp.get_context("spawn").Process(target=publish, args=(bootstrap, topics, msgs[half:], rate))
    rng = random.Random(args.seed)
    storm = Storm(cfg, cfg_file, args.processes, rng, say)
    t0 = time.monotonic()
    child.start()
    for _ in range(args.processes):
        storm.start()
    say(f"storm: {args.processes} capture processes started; one started or killed every ~{args.interval:g} s")
    last_t, last_n, first_n = t0, landed_count(cfg), landed_count(cfg)
    while time.monotonic() - t0 < args.storm_seconds or child.is_alive():
        time.sleep(args.interval * rng.uniform(0.5, 1.5))
        what = storm.act()
        now, n = time.monotonic(), landed_count(cfg)
        say(f"  {now - t0:6.1f} s  {what:<40} landed {n:>9}  {((n - last_n) / (now - last_t)):>8.0f} events/s")
        last_t, last_n = now, n
        if time.monotonic() - t0 > args.storm_seconds + 600:
            raise SystemExit("the publisher has not finished 10 minutes after the storm's end")
    child.join()
    if child.exitcode != 0:
        raise SystemExit(f"the publisher during the storm failed (exit {child.exitcode})")
    storm_s = time.monotonic() - t0
    storm.stop_all()
    landed_in_storm = landed_count(cfg) - first_n
    say(f"storm over after {storm_s:.1f} s: {storm.starts} starts, {storm.kill9} kill -9, {storm.sigterm} SIGTERM; "
        f"landed {landed_in_storm} events during it ({landed_in_storm / storm_s:.0f}/s)")
    t1 = time.monotonic()
    final = subprocess.run([sys.executable, "-m", "o2p.cli", "--config", str(cfg_file), "--home", str(home),
                            "capture", "--until-idle"], cwd=REPO, env=ENV, capture_output=True, text=True)
    final_s = time.monotonic() - t1
    if final.returncode != 0:
        say(final.stdout[-2000:] + final.stderr[-2000:])
    ends = log_offsets(cfg)
    expected = Counter({(tp, p, o): 1 for (tp, p), (b, e) in ends.items() for o in range(b, e)})
    offsets, ids = landed_offsets_and_ids(cfg)
    committed = group_committed(cfg)
    result = {
        "events": len(msgs), "partitions": len(ends), "publish_before_s": round(pub_s, 1),
        "storm_s": round(storm_s, 1), "starts": storm.starts, "kill_9": storm.kill9, "sigterm": storm.sigterm,
        "landed_during_storm": landed_in_storm, "storm_events_per_s": round(landed_in_storm / storm_s),
        "final_capture_s": round(final_s, 1), "final_exit": final.returncode,
        "bad_exits": storm.bad_exits,
        "offsets_exactly_once": offsets == expected, "missing": sum((expected - offsets).values()),
        "doubled": sum(v - 1 for v in offsets.values() if v > 1),
        "event_ids_exactly_once": ids == published,
        # an empty partition has nothing to commit: its committed offset is None
        "committed_at_log_ends": all(committed.get(tp) == e or (b == e and committed.get(tp) is None)
                                     for tp, (b, e) in ends.items()),
    }
    if not result["committed_at_log_ends"]:
        result["committed_behind"] = {f"{t}[{p}]": e - (committed.get((t, p)) or 0)
                                      for (t, p), (_, e) in ends.items() if committed.get((t, p)) != e}
    result["ok"] = (result["offsets_exactly_once"] and result["event_ids_exactly_once"]
                    and result["committed_at_log_ends"] and not storm.bad_exits and final.returncode == 0)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000, help="events published in all (default 1M)")
    ap.add_argument("--processes", type=int, default=3, help="capture processes at most (default 3)")
    ap.add_argument("--interval", type=float, default=3.0, help="seconds between storm actions, ± 50 %% (default 3)")
    ap.add_argument("--storm-seconds", type=float, default=60, help="the storm lasts this long at least (default 60)")
    ap.add_argument("--partitions", type=int, default=3, help="partitions per topic (default 3)")
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--bootstrap", help="a running cluster (default: start a scratch 3-node cluster)")
    ap.add_argument("--json", action="store_true", help="print only the JSON summary")
    args = ap.parse_args()
    say = (lambda *_: None) if args.json else (lambda line: print(line, flush=True))

    with tempfile.TemporaryDirectory(prefix="o2p-storm-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        if args.bootstrap:
            result = run(args, args.bootstrap, home, say)
        else:
            t0 = time.monotonic()
            with kb.scratch_broker(Path(tmp) / "cluster", log=lambda *_: None, brokers=3) as cluster:
                say(f"3-node cluster up in {time.monotonic() - t0:.1f} s: {cluster.kafka.bootstrap_servers}")
                result = run(args, cluster.kafka.bootstrap_servers, home, say)
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
