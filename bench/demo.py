"""`o2p demo` on a fresh home, timed step by step (issue #16: ≤ 60 s after install).

    .venv/bin/python bench/demo.py            # one fresh home, a scratch broker port
    .venv/bin/python bench/demo.py --keep DIR # keep the home (its run logs) in DIR

Runs the real command (`python -m o2p.cli demo`) in a child process with a new `$O2P_HOME`
and a config naming a free loopback port pair (the broker the demo starts and stops), stamps
each line it prints with the seconds since start, and prints the time of each of its steps
(broker, simulate, capture, run — with its jobs —, each release) against the target.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from streaming.broker import free_port_pair  # noqa: E402

TARGET_S = 60.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep", metavar="DIR", help="use DIR (must not exist) as the home and keep it")
    ap.add_argument("--month", help="the demo's --month (default: its own)")
    args = ap.parse_args()
    tmp = None
    if args.keep:
        home = Path(args.keep)
        if home.exists():
            sys.exit(f"--keep {home}: exists; name a new folder")
    else:
        tmp = tempfile.TemporaryDirectory(prefix="o2p-bench-demo-")
        home = Path(tmp.name) / "home"
    home.mkdir(parents=True)
    cfg = home / "config.yaml"
    cfg.write_text(f'kafka:\n  bootstrap_servers: "127.0.0.1:{free_port_pair()}"\n')
    env = {**os.environ, "O2P_HOME": str(home), "O2P_CONFIG": str(cfg),
           "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
           "PYTHONPATH": f"{ROOT}:{os.environ.get('PYTHONPATH', '')}"}
    env.pop("DAGSTER_HOME", None)
    argv = [sys.executable, "-m", "o2p.cli", "demo"] + (["--month", args.month] if args.month else [])
    t0 = time.monotonic()
    stamps: list[tuple[float, str]] = []
    with subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          cwd=ROOT) as proc:
        for line in proc.stdout:
            t = time.monotonic() - t0
            stamps.append((t, line.rstrip("\n")))
            print(f"{t:7.1f}  {line}", end="", flush=True)
    total = time.monotonic() - t0
    if proc.returncode != 0:
        print(f"o2p demo exited {proc.returncode}")
        return 1
    # a step starts at its line ("… " lines) and lasts until the next one; a release is printed
    # when it has finished ("  YYYY-MM: folder"), so it lasted since the line before it
    starts = ("1/5 ", "2/5 ", "3/5 ", "4/5 ", "5/5 ", "reference data", "attribution (Spark)", "commission (dbt)")
    marks = [(t, s) for t, s in stamps if s.startswith(starts) or s.startswith("  20")]
    print(f"\n{'step':60} {'seconds':>8}")
    for k, (t, s) in enumerate(marks):
        if s.startswith("  20"):
            label, took = f"release {s.strip()[:7]} (and its transfer results)", t - marks[k - 1][0]
        else:
            t_next = marks[k + 1][0] if k + 1 < len(marks) else total
            if k + 1 < len(marks) and marks[k + 1][1].startswith("  20"):
                continue   # the release line accounts for this stretch
            label, took = s.strip(), t_next - t
        print(f"{label[:60]:60} {took:8.1f}")
    print(f"{'total':60} {total:8.1f}")
    print(f"\no2p demo on a fresh home: {total:.1f} s (target ≤ {TARGET_S:.0f} s: "
          f"{'met' if total <= TARGET_S else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
