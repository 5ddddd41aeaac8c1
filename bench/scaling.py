"""Measured curves for the capacity model (issue #16, item 6): how capture and Spark scale with
the backlog, with capture processes and with Spark workers.

    .venv/bin/python bench/scaling.py                              # 1M, 2M, 5M; both parts
    .venv/bin/python bench/scaling.py --sizes 20000,40000 --group-size 40000   # a dry run
    .venv/bin/python bench/scaling.py --only spark --sizes 1000000,2000000

Capture (`--only capture`), on one scratch broker (`streaming.broker.scratch_broker`):
1. The mid-size month's traffic (`bench/month.py`'s `simulate`, once at the largest size) is cut
   into a prefix per size (the same share of each topic) and published with kcat
   (`month.kcat_publish`) to a topic set of its own with `--partitions` partitions (default 6).
2. (a) one `o2p capture --until-idle` per size, a fresh consumer group and landing zone each;
   (b) 1, 2 and 3 `o2p capture --until-idle` processes of one consumer group started together
   over the `--group-size` topics (fresh group and landing zone each): the time until the last
   one has exited, the CPU seconds they and their sink processes used (not the broker's), and
   the landing zone's bytes an event. Every run is checked exactly once: landed rows + dead letters = distinct
   (topic, partition, offset) = the log's extent (`bench/capture.py`'s counts against
   `streaming.health.log_offsets`).
Spark (`--only spark`):
3. `bench/attribution.py`'s simulated landing zone per size (6 orders per 100 clicks), then
   click validity + attribution (`run_click_validity`, `run_attribution`, the project's config:
   4 shuffle partitions) in a fresh driver process per point — the first run in a session, as a
   daily run sees it — on `local[2]` and on a standalone cluster of two workers of one core each
   (`tests/spark_cluster.py`, pyspark's own scripts); session start-up on its own column. The
   same rules as one DuckDB SQL per size are the baseline, and each Spark output is compared
   with it row for row.

Before each measurement the load average is read (`os.getloadavg`, as `uptime` prints it); the
bench waits up to `--wait` seconds for the 1-minute load to drop below `--max-load` and prints the
load beside each figure. Each table gives events/s and the ratio to its first point; the last
line is a JSON summary. Exit 1 when an exactly-once check or a comparison fails.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

# messages of month.py's simulate at scale 1 (≈4.8M clicks, 0.56M order events, 34k refunds; measured:
# 5,165,465 at scale 0.9716)
MONTH_MESSAGES = 5_316_000


def settle(max_load: float, wait: float) -> tuple[float, float, float]:
    """Wait (up to `wait` s) for the 1-minute load to drop below `max_load`; the load averages then."""
    deadline = time.monotonic() + wait
    load = os.getloadavg()
    while load[0] >= max_load and time.monotonic() < deadline:
        time.sleep(10)
        load = os.getloadavg()
    print(f"  [{time.strftime('%H:%M:%S', time.gmtime())} UTC] load average: {load[0]:.2f}, {load[1]:.2f}, "
          f"{load[2]:.2f}", flush=True)
    return load


def prefix_lines(counts: dict[str, int], n: int) -> dict[str, int]:
    """How many lines of each topic's file make a prefix of `n` messages with the same topic
    shares as the whole (the largest remainders get the rounding)."""
    total = sum(counts.values())
    if n >= total:
        return dict(counts)
    exact = {t: c * n / total for t, c in counts.items()}
    out = {t: int(v) for t, v in exact.items()}
    for t in sorted(exact, key=lambda t: out[t] - exact[t])[: n - sum(out.values())]:
        out[t] += 1
    return out


def table(title: str, unit: str, rows: list[dict]) -> None:
    """rows: {label, n, seconds, load, ...}; events/s and the ratio to the first row's rate."""
    print(f"\n{title}")
    print(f"{'point':<28}{unit:>10}{'seconds':>10}{unit + '/s':>12}{'ratio':>7}   load 1/5 min")
    base = rows[0]["n"] / rows[0]["seconds"] if rows else 1
    for prev, r in zip([None, *rows[:-1]], rows, strict=True):
        rate = r["n"] / r["seconds"]
        print(f"{r['label']:<28}{r['n']:>10}{r['seconds']:>10.1f}{rate:>12.0f}{rate / base:>7.2f}   "
              f"{r['load'][0]:.2f} / {r['load'][1]:.2f}" + marginal(prev, r, unit)
              + (f"   CPU {r['cpu_s']:.0f} s: {r['n'] / r['cpu_s']:.0f} {unit}/CPU s" if r.get("cpu_s") else ""))


def marginal(prev: dict | None, r: dict, unit: str) -> str:
    """The rate of the extra events between two sizes: what a larger backlog costs once the
    fixed costs (process and JVM start-up, first batches) are paid."""
    if prev is None or r["n"] <= prev["n"] or r["seconds"] <= prev["seconds"]:
        return ""
    return f"   marginal {(r['n'] - prev['n']) / (r['seconds'] - prev['seconds']):.0f} {unit}/s"


# --- capture --------------------------------------------------------------------------------

def capture_config(home: Path, bootstrap: str, topics: str, group: str, partitions: int) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    cfg_file = home / "o2p.yaml"
    cfg_file.write_text(
        f'kafka:\n  bootstrap_servers: "{bootstrap}"\n  local_broker: false\n  partitions: {partitions}\n'
        f"  consumer_group: {group}\n  topics: {{clicks: {topics}.clicks, orders: {topics}.orders, "
        f"refunds: {topics}.refunds, deadletter: {topics}.deadletter}}\n")
    return cfg_file


def children_cpu() -> float:
    """CPU seconds (user + system) of the children waited for so far, and of theirs (a capture
    process joins its sink process). Not for Spark: pyspark's JVM is not waited for by its
    Python process, and a cluster's executors are the workers' children."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def capture_run(cfg_file: Path, processes: int) -> tuple[float, float]:
    """`processes` × `o2p capture --until-idle` of one group, started together; seconds until the
    last exits (each must exit 0), and the CPU seconds they used."""
    from storm import ENV

    home = cfg_file.parent
    cpu0 = children_cpu()
    t0 = time.monotonic()
    procs = [subprocess.Popen([sys.executable, "-m", "o2p.cli", "--config", str(cfg_file), "--home", str(home),
                               "capture", "--until-idle"], cwd=ROOT, env=ENV,
                              stdout=open(home / f"capture-{i + 1}.log", "w"), stderr=subprocess.STDOUT)
             for i in range(processes)]
    codes = [p.wait() for p in procs]
    took = time.monotonic() - t0
    if any(codes):
        raise SystemExit(f"capture exited {codes}; see {home}/capture-*.log")
    return took, children_cpu() - cpu0


def exactly_once(cfg_file: Path) -> dict:
    """Landed rows + dead letters, distinct (topic, partition, offset), the log's extent."""
    from capture import count_landed, distinct_offsets

    from o2p.config import load_config
    from streaming.health import log_offsets

    cfg = load_config(cfg_file, home=cfg_file.parent)
    rows, dead = count_landed(cfg.landing_path)
    distinct = distinct_offsets(cfg.landing_path)
    extent = sum(e - b for b, e in log_offsets(cfg).values())
    return {"landed": rows + dead, "distinct_offsets": distinct, "log": extent,
            "exactly_once": rows + dead == distinct == extent}


def capture_part(args, tmp: Path, results: dict) -> bool:
    from month import kcat_publish, simulate

    from o2p.config import load_config
    from streaming.broker import ensure_topics, scratch_broker

    sizes = sorted(set(args.sizes) | {args.group_size})
    ok = True
    with scratch_broker(tmp / "broker", log=lambda *_: None) as bcfg:
        bootstrap = bcfg.kafka.bootstrap_servers
        full = tmp / "tsv"
        full.mkdir()
        t0 = time.monotonic()
        counts = simulate(bcfg, full, scale=max(sizes) / MONTH_MESSAGES * 1.02, chunk_orders=30_000, seed=16)
        print(f"simulated {sum(counts.values())} messages ({counts}) in {time.monotonic() - t0:.0f} s", flush=True)
        topic_sets = {}
        for n in sizes:
            lines = prefix_lines(counts, n)
            part = tmp / f"tsv-{n}"
            part.mkdir()
            for t, k in lines.items():
                with open(full / f"{t}.tsv", "rb") as src, open(part / f"{t}.tsv", "wb") as dst:
                    for _ in range(k):
                        dst.write(src.readline())
            cfg_file = capture_config(tmp / f"pub-{n}", bootstrap, f"scale{n}", f"pub{n}", args.partitions)
            cfg = load_config(cfg_file, home=cfg_file.parent)
            ensure_topics(cfg)
            t0 = time.monotonic()
            kcat_publish(cfg, part)
            shutil.rmtree(part)
            topic_sets[n] = sum(lines.values())
            print(f"published {topic_sets[n]} messages to scale{n}.* ({args.partitions} partitions) with kcat in "
                  f"{time.monotonic() - t0:.1f} s", flush=True)
        shutil.rmtree(full)

        def point(n: int, processes: int) -> dict:
            nonlocal ok
            cfg_file = capture_config(tmp / f"cap-{n}-{processes}", bootstrap, f"scale{n}", f"cap{n}x{processes}",
                                      args.partitions)
            load = settle(args.max_load, args.wait)
            took, cpu = capture_run(cfg_file, processes)
            check = exactly_once(cfg_file)
            ok = ok and check["exactly_once"]
            print(f"  {n} events, {processes} capture process(es): {took:.1f} s ({n / took:.0f}/s), CPU {cpu:.1f} s "
                  f"({n / cpu:.0f} events per CPU second); "
                  f"landed {check['landed']}, distinct offsets {check['distinct_offsets']}, log {check['log']} -> "
                  f"{'exactly once' if check['exactly_once'] else 'MISMATCH'}", flush=True)
            landed_bytes = sum(f.stat().st_size for f in (cfg_file.parent / "landing").rglob("*.parquet"))
            print(f"  landing zone: {landed_bytes / 1e6:.0f} MB of Parquet ({landed_bytes / n:.0f} bytes an event)",
                  flush=True)
            shutil.rmtree(cfg_file.parent / "landing", ignore_errors=True)
            return {"label": f"{n} events, {processes} proc", "n": topic_sets[n], "seconds": took, "load": load,
                    "processes": processes, "cpu_s": cpu, "landed_bytes": landed_bytes, **check}

        # the fixed cost of a capture process: `--until-idle` over empty topics
        empty = capture_config(tmp / "cap-empty", bootstrap, "scale0", "cap0", args.partitions)
        ensure_topics(load_config(empty, home=empty.parent))
        load = settle(args.max_load, args.wait)
        fixed, fixed_cpu = capture_run(empty, 1)
        print(f"  fixed cost: `o2p capture --until-idle` over empty topics {fixed:.1f} s ({fixed_cpu:.1f} CPU s)",
              flush=True)
        results["capture_fixed_s"], results["capture_fixed_load"] = round(fixed, 2), [round(x, 2) for x in load]

        # sizes up to the group's first, then the processes, then the larger sizes (dropped first
        # when the deadline comes)
        by_size, by_procs = [], []
        for n in [s for s in args.sizes if s <= args.group_size]:
            by_size.append(point(n, 1))
        for k in args.processes:
            if past(args.deadline):
                print(f"  {k} processes: skipped (past the deadline {args.deadline} UTC)")
                continue
            same = [r for r in by_size if r["n"] == topic_sets[args.group_size] and r["processes"] == k]
            by_procs.append(same[0] if same else point(args.group_size, k))
        for n in [s for s in args.sizes if s > args.group_size]:
            if past(args.deadline):
                print(f"  {n} events: skipped (past the deadline {args.deadline} UTC)")
                continue
            by_size.append(point(n, 1))
    table("(a) capture: one `o2p capture --until-idle`, backlog size", "events", by_size)
    table(f"(b) capture: processes of one group over {args.group_size} events, {args.partitions} partitions a topic",
          "events", by_procs)
    results["capture_by_size"] = [_short(r) for r in by_size]
    results["capture_by_processes"] = [_short(r) for r in by_procs]
    return ok


# --- Spark ----------------------------------------------------------------------------------

SPARK_CHILD = """
import json, sys, time
from o2p.config import load_config
from o2p.layout import landed_dates
from pipelines.assets.attribution.spark_jobs import run_attribution, run_click_validity
from pipelines.lib.spark import get_spark
cfg = load_config(sys.argv[1], home=sys.argv[2])
t = time.monotonic(); spark = get_spark(cfg); spark.range(1).count(); out = {"startup": time.monotonic() - t}
clicks, orders = landed_dates(cfg.landing_path, "clicks"), landed_dates(cfg.landing_path, "orders")
t = time.monotonic(); run_click_validity(spark, cfg, clicks[0], clicks[-1]); out["validity"] = time.monotonic() - t
t = time.monotonic(); run_attribution(spark, cfg, orders[0], orders[-1], {}); out["attribution"] = time.monotonic() - t
out["executors"] = spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size() - 1
print(json.dumps(out))
spark.stop()
"""


def spark_part(args, tmp: Path, results: dict) -> bool:
    import re

    import duckdb
    from attribution import (
        ATTR_COLS,
        ATTRIBUTION_SQL,
        VALIDITY_COLS,
        VALIDITY_SQL,
        compare,
        simulate,
    )

    from o2p import layout
    from o2p.config import load_config
    from o2p.timeutil import US_PER_DAY, US_PER_SECOND
    from tests.spark_cluster import standalone_cluster

    ok = True
    rows: dict[str, list[dict]] = {"duckdb": [], "local": [], "cluster": []}
    with standalone_cluster(tmp / "spark-cluster", cores=1, memory=args.worker_memory, workers=2) as cluster:
        print(f"standalone cluster: {cluster.master}, 2 workers of 1 core, {args.worker_memory} each", flush=True)
        for n in args.sizes:
            if past(args.deadline):
                print(f"  {n} clicks: skipped (past the deadline {args.deadline} UTC)")
                continue
            home = tmp / f"spark-{n}"
            home.mkdir()
            local_file = home / "local.yaml"
            local_file.write_text("{}\n")
            cluster_file = home / "cluster.yaml"
            cluster_file.write_text(f'spark:\n  master: "{cluster.master}"\n  conf:\n'
                                    f'    spark.sql.shuffle.partitions: "4"\n    spark.ui.enabled: "false"\n'
                                    f'    spark.driver.memory: "2g"\n    spark.executor.memory: "{args.executor_memory}"\n')
            cfg = load_config(local_file, home=home)
            con = duckdb.connect()
            orders = max(1, n * 6 // 100)
            t0 = time.monotonic()
            simulate(con, n, orders, home, cfg.landing_path)
            print(f"simulated {n} clicks and {orders} orders in {time.monotonic() - t0:.0f} s", flush=True)
            validated = layout.warehouse_table(cfg.warehouse_path, layout.CLICKS_VALIDATED)
            attributed = layout.warehouse_table(cfg.warehouse_path, layout.ORDER_ATTRIBUTION)
            cv = cfg.click_validity
            fmt = dict(clicks=home / "clicks.parquet", orders=home / "orders.parquet", valid=home / "duck_valid.parquet",
                       window=cv.flood_window_seconds * US_PER_SECOND, flood_max=cv.flood_max_clicks,
                       pattern="(?i)(" + "|".join(re.escape(p) for p in cv.bot_user_agent_patterns) + ")",
                       lookback=cfg.attribution.lookback_days * US_PER_DAY,
                       lookback_minus_1=cfg.attribution.lookback_days * US_PER_DAY - 1)
            load = settle(args.max_load, args.wait)
            t0 = time.monotonic()
            duckdb.connect().execute(f"copy ({VALIDITY_SQL.format(**fmt)}) to '{home / 'duck_valid.parquet'}' (format parquet)")
            duckdb.connect().execute(f"copy ({ATTRIBUTION_SQL.format(**fmt)}) to '{home / 'duck_out.parquet'}' (format parquet)")
            rows["duckdb"].append({"label": f"{n} clicks, DuckDB", "n": n, "seconds": time.monotonic() - t0, "load": load})
            print(f"  {n} clicks, DuckDB SQL: {rows['duckdb'][-1]['seconds']:.1f} s", flush=True)
            for mode, cfg_file in (("local", local_file), ("cluster", cluster_file)):
                load = settle(args.max_load, args.wait)
                proc = subprocess.run([sys.executable, "-c", SPARK_CHILD, str(cfg_file), str(home)], cwd=ROOT,
                                      capture_output=True, text=True)
                if proc.returncode != 0:
                    print(proc.stderr[-3000:])
                    raise SystemExit(f"Spark ({mode}) failed at {n} clicks")
                out = json.loads(proc.stdout.strip().splitlines()[-1])
                v_diff = compare(con, f"'{validated}/*/*.parquet'", f"'{home}/duck_valid.parquet'", VALIDITY_COLS)
                a_diff = compare(con, f"'{attributed}/*/*.parquet'", f"'{home}/duck_out.parquet'", ATTR_COLS)
                same = v_diff == (0, 0) and a_diff == (0, 0)
                ok = ok and same
                secs = out["validity"] + out["attribution"]
                rows[mode].append({"label": f"{n} clicks, {mode}", "n": n, "seconds": secs, "load": load,
                                   "startup": out["startup"], "validity": out["validity"],
                                   "attribution": out["attribution"], "executors": out["executors"],
                                   "same_as_duckdb": same})
                print(f"  {n} clicks, Spark {mode} ({out['executors']} executor(s)): start-up {out['startup']:.1f} s, "
                      f"validity {out['validity']:.1f} s, attribution {out['attribution']:.1f} s; "
                      f"{'identical to DuckDB' if same else f'DIFFERENT: validity {v_diff}, attribution {a_diff}'}",
                      flush=True)
            shutil.rmtree(home)
    table("(c) DuckDB SQL of the same rules (2 threads): click validity + attribution", "clicks", rows["duckdb"])
    table("(c) Spark local[2]: click validity + attribution, first run in a session", "clicks", rows["local"])
    table("(c) Spark standalone, 2 workers × 1 core: click validity + attribution, first run", "clicks", rows["cluster"])
    if rows["local"] and rows["cluster"]:
        print("\ncluster / local seconds: " + ", ".join(
            f"{c['n']} clicks {c['seconds'] / loc['seconds']:.2f}" for loc, c in zip(rows["local"], rows["cluster"], strict=True)))
    for k, v in rows.items():
        results[f"spark_{k}" if k != "duckdb" else "duckdb"] = [_short(r) for r in v]
    return ok


# --- main -----------------------------------------------------------------------------------

def _short(r: dict) -> dict:
    out = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items() if k != "label"}
    out["load"] = [round(x, 2) for x in r["load"]]
    out["per_s"] = round(r["n"] / r["seconds"])
    return out


def past(deadline: str | None) -> bool:
    return bool(deadline) and time.strftime("%H:%M", time.gmtime()) >= deadline


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000000,2000000,5000000", help="events (clicks for Spark) per point")
    ap.add_argument("--group-size", type=int, default=2_000_000, help="the backlog of the processes curve")
    ap.add_argument("--processes", default="1,2,3", help="capture processes per point of the processes curve")
    ap.add_argument("--partitions", type=int, default=6, help="partitions per topic (default 6)")
    ap.add_argument("--only", choices=("capture", "spark"), help="one part only")
    ap.add_argument("--worker-memory", default="3g")
    ap.add_argument("--executor-memory", default="2g")
    ap.add_argument("--max-load", type=float, default=2.5, help="wait for a 1-minute load below this (default 2.5)")
    ap.add_argument("--wait", type=float, default=180, help="…for at most this many seconds (default 180)")
    ap.add_argument("--deadline", metavar="HH:MM", help="skip the points not started by this time (UTC)")
    ap.add_argument("--tmp", default="/tmp", help="where the scratch data goes (several GB at 5M)")
    args = ap.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",")]
    args.processes = [int(s) for s in args.processes.split(",")]
    if args.only != "spark" and not shutil.which("kcat"):
        sys.exit("kcat is required (Debian: apt-get install kcat)")
    results: dict = {}
    ok = True
    with tempfile.TemporaryDirectory(prefix="scale-", dir=args.tmp) as tmp:
        if args.only in (None, "capture"):
            (Path(tmp) / "capture").mkdir()
            ok = capture_part(args, Path(tmp) / "capture", results) and ok
        if args.only in (None, "spark"):
            (Path(tmp) / "spark").mkdir()
            ok = spark_part(args, Path(tmp) / "spark", results) and ok
    results["ok"] = ok
    print(json.dumps(results))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
