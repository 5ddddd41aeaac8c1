"""A month of a mid-size platform, from kcat-published topics to released payouts (issue #16).

    .venv/bin/python bench/month.py                    # the mid-size month: target ≤ 300 s
    .venv/bin/python bench/month.py --scale 0.25       # a quarter of it, for iterating
    .venv/bin/python bench/month.py --keep DIR         # keep the home (logs, Dagster runs) in DIR

1. Simulated traffic (`streaming/simulate.py`, in chunks of `--chunk-orders` orders with their own
   seeds so memory stays small): at scale 1, 300,000 orders in 2026-10 with 16 clicks per order
   on average — about 4.8M clicks from 2026-09-22 on, 525k order events, 29k refunds into
   2026-11 — from 2,000 promoters and 100,000 buyers, 1 % malformed, 3 % retries, 1 % late.
   Written as `key<TAB>value` lines per topic and published with kcat (librdkafka; Debian's
   `kcat`) to a scratch broker (`streaming.broker.scratch_broker`). Not in the target.
2. Timed, each as the real command in a child process on one `$O2P_HOME`:
   `o2p capture --until-idle` → `o2p run` → `o2p payouts release` of 2026-09, 2026-10, 2026-11.
   Inside each command, every Dagster run and every step of it, from the instance's run
   records and step stats (the same figures as the UI's run timeline); what a command spends
   outside its runs (imports, config, definitions) is the `(outside runs)` row.
3. Baselines in the same run (the code before a change is not here to run): the fixed costs
   every command pays — a Python process that imports the Dagster definitions, and one that
   starts a Spark session with the project's config and runs one job.

The machine is shared and noisy (2 cores): read the shares, and compare runs of one session.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_S = 300.0
PERIODS = ("2026-09", "2026-10", "2026-11")


def simulate(cfg, out: Path, *, scale: float, chunk_orders: int, seed: int) -> dict[str, int]:
    """Per-topic kcat input files (`key\\tvalue` lines); the reference data under the home."""
    from streaming.producer import encode, route
    from streaming.simulate import build_world, messages, write_reference

    orders = max(1, round(300_000 * scale))
    counts: dict[str, int] = {}
    files = {t: open(out / f"{t}.tsv", "wb") for t in ("clicks", "orders", "refunds")}
    topic_table = {getattr(cfg.kafka.topics, t): t for t in files}
    try:
        done, k = 0, 0
        while done < orders:
            n = min(chunk_orders, orders - done)
            world = build_world("2026-10", orders=n, promoters=2000, buyers=max(300, round(100_000 * scale)),
                                clicks_per_order=16.0, flood_devices=max(1, n // 2000), seed=seed + k)
            if k == 0:
                write_reference(world, cfg.reference_path)
            for kind, msg in messages(world):
                if kind == "event":
                    topic, key = route(cfg, msg)
                    table, value = topic_table[topic], encode(msg)
                else:
                    table, key, value = kind, b"", msg
                if b"\n" in value or b"\t" in value or b"\r" in value:
                    continue   # kcat reads one message a line: random bytes with a newline cannot go
                files[table].write((key or b"") + b"\t" + value + b"\n")
                counts[table] = counts.get(table, 0) + 1
            done += n
            k += 1
    finally:
        for fh in files.values():
            fh.close()
    return counts


def kcat_publish(cfg, out: Path) -> None:
    for table in ("clicks", "orders", "refunds"):
        subprocess.run(["kcat", "-P", "-b", cfg.kafka.bootstrap_servers, "-t", getattr(cfg.kafka.topics, table),
                        "-K", "\t", "-X", "acks=all", "-X", "enable.idempotence=true",
                        "-X", "linger.ms=50", "-X", "batch.num.messages=10000",
                        "-l", str(out / f"{table}.tsv")], check=True)


def o2p(env: dict, *args: str, log: Path) -> float:
    """One o2p command in a child process (the checkout first on PYTHONPATH), its output in `log`."""
    t0 = time.monotonic()
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f"\n$ o2p {' '.join(args)}\n")
        fh.flush()
        proc = subprocess.run([sys.executable, "-m", "o2p.cli", *args], env=env, stdout=fh, stderr=subprocess.STDOUT,
                              cwd=env["PYTHONPATH"].split(":")[0])
    took = time.monotonic() - t0
    if proc.returncode != 0:
        sys.exit(f"o2p {' '.join(args)} exited {proc.returncode}; see {log}")
    return took


def runs_since(home: Path, since: float) -> list[dict]:
    """The Dagster runs started after `since` (epoch s), oldest first, each with its steps."""
    from dagster import DagsterInstance, RunsFilter

    from o2p.config import load_config
    from pipelines.lib.instance import dagster_home

    os.environ["DAGSTER_HOME"] = str(dagster_home(load_config(home / "config.yaml", home=home))[0])
    inst = DagsterInstance.get()
    out = []
    for rec in reversed(inst.get_run_records(RunsFilter(created_after=_dt(since)))):
        run = rec.dagster_run
        steps = [(s.step_key, (s.end_time or 0) - (s.start_time or 0)) for s in inst.get_run_step_stats(run.run_id)]
        part = run.tags.get("dagster/partition") or (
            f"{run.tags['dagster/asset_partition_range_start']}..{run.tags['dagster/asset_partition_range_end']}"
            if "dagster/asset_partition_range_start" in run.tags else "")
        out.append({"job": run.job_name, "partition": part, "seconds": (rec.end_time or 0) - (rec.start_time or 0),
                    "steps": steps})
    inst.dispose()
    return out


def _dt(ts: float):
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, tz=UTC)


BASELINE_DEFS = "import time; t=time.monotonic(); import pipelines.definitions; print(time.monotonic()-t)"
BASELINE_SPARK = """
import time, sys
from o2p.config import load_config
from pipelines.lib.spark import get_spark
cfg = load_config(sys.argv[1], home=sys.argv[2])
t = time.monotonic(); s = get_spark(cfg); s.range(1000).selectExpr("sum(id)").collect(); print(time.monotonic() - t)
s.stop()
"""


def baseline(env: dict, code: str, *args: str) -> float:
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True,
                         cwd=env["PYTHONPATH"].split(":")[0])
    if out.returncode != 0:
        return float("nan")
    return float(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0, help="share of the mid-size month (default 1: 300k orders)")
    ap.add_argument("--chunk-orders", type=int, default=30_000, help="orders simulated at a time (memory)")
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--keep", metavar="DIR", help="use DIR (must not exist) as the home and keep it")
    ap.add_argument("--code", metavar="DIR", default=str(ROOT),
                    help="run the o2p commands of this checkout (default: this one), e.g. the main branch's "
                         "for a before/after on the same machine")
    args = ap.parse_args()
    if not shutil.which("kcat"):
        sys.exit("kcat is required (Debian: apt-get install kcat)")

    from streaming.broker import scratch_broker

    tmp = tempfile.TemporaryDirectory(prefix="o2p-bench-month-")
    home = Path(args.keep) if args.keep else Path(tmp.name) / "home"
    if args.keep and home.exists():
        sys.exit(f"--keep {home}: exists; name a new folder")
    work = Path(tmp.name) / "tsv"
    work.mkdir(parents=True)
    log = Path(tmp.name if not args.keep else home) / "bench-month.log"
    rows: list[tuple[str, float]] = []
    details: list[tuple[str, list[dict], float]] = []
    with scratch_broker(home, log=lambda *_: None) as cfg:
        env = {**os.environ, "O2P_HOME": str(home), "O2P_CONFIG": str(home / "broker.yaml"),
               "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
               "PYTHONPATH": f"{args.code}:{os.environ.get('PYTHONPATH', '')}"}
        env.pop("DAGSTER_HOME", None)
        shutil.copy(home / "broker.yaml", home / "config.yaml")
        from streaming.broker import ensure_topics

        ensure_topics(cfg)
        t0 = time.monotonic()
        counts = simulate(cfg, work, scale=args.scale, chunk_orders=args.chunk_orders, seed=args.seed)
        print(f"simulated {sum(counts.values())} messages ({', '.join(f'{k} {v}' for k, v in counts.items())}) "
              f"in {time.monotonic() - t0:.0f} s", flush=True)
        t0 = time.monotonic()
        kcat_publish(cfg, work)
        print(f"published with kcat in {time.monotonic() - t0:.0f} s (not in the target)", flush=True)

        print("baselines …", flush=True)
        base_defs = baseline(env, BASELINE_DEFS)
        base_spark = baseline(env, BASELINE_SPARK, str(home / "config.yaml"), str(home))

        def stage(name: str, *argv: str) -> None:
            started = time.time()
            took = o2p(env, *argv, log=log)
            rows.append((name, took))
            details.append((name, runs_since(home, started), took))
            print(f"{name}: {took:.1f} s", flush=True)

        stage("capture --until-idle", "capture", "--until-idle")
        stage("run", "run")
        for p in PERIODS:
            stage(f"payouts release --period {p}", "payouts", "release", "--period", p)

    total = sum(s for _, s in rows)
    print(f"\n{'stage / run / step':58} {'seconds':>8} {'share':>6}")
    for name, runs, took in details:
        print(f"{name:58} {took:8.1f} {took / total:6.1%}")
        in_runs = 0.0
        for r in runs:
            print(f"  {r['job'] + ' ' + r['partition']:56} {r['seconds']:8.1f}")
            in_runs += r["seconds"]
            for key, sec in sorted(r["steps"], key=lambda s: -s[1]):
                print(f"    {key[:54]:54} {sec:8.1f}")
        if runs:
            print(f"  {'(outside runs: process start, imports, config, definitions)':56} {took - in_runs:8.1f}")
    print(f"\n{'total capture → released 2026-09..11':58} {total:8.1f}")
    print(f"target ≤ {TARGET_S:.0f} s at scale 1: {'met' if total <= TARGET_S else 'NOT met'}"
          + (f" (scale {args.scale}: the target is for scale 1)" if args.scale != 1 else ""))
    print("\nbaselines, same run: import the Dagster definitions "
          f"{base_defs:.1f} s; Spark session start-up and one job {base_spark:.1f} s")
    print(json.dumps({"scale": args.scale, "stages": dict(rows), "total": total,
                      "baseline_definitions_s": base_defs, "baseline_spark_s": base_spark}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
