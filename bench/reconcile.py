"""Transfer results at volume: `o2p payouts reconcile` of a results file for a batch of N payees
(ACCEPTED, WAIT_USER_CONFIRM, then SUCCESS / FAIL / CANCELLED: about 3 lines a bill), against
the least any import costs — reading and parsing the same lines as JSON — in the same run; then
the same file again (nothing new: the idempotent path).

    .venv/bin/python bench/reconcile.py                 # 20k payees on SQLite
    .venv/bin/python bench/reconcile.py --payees 100000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from o2p import release  # noqa: E402
from o2p.config import load_config  # noqa: E402
from o2p.reconcile import reconcile, simulate_results  # noqa: E402
from o2p.registry import Registry  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--payees", type=int, default=20_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        cfg = load_config(None, home=Path(d) / "home")
        reg = Registry(cfg.registry)
        batch = "2026-10-bench"
        reg.claim("2026-10", batch, released_by="bench")
        bills = [{"out_bill_no": release.out_bill_no(batch, f"P{i:07d}"), "batch_id": batch, "promoter_id": f"P{i:07d}",
                  "openid": f"o{i}", "gross_fen": 10_000 + i, "tax_fen": 0, "net_fen": 10_000 + i} for i in range(args.payees)]
        reg.complete("2026-10", folder=d, totals={"row_count": len(bills), "gross_fen": 0, "tax_fen": 0, "net_fen": 0},
                     files={}, manifest_sha256="", config_hash="", input_fingerprint="", entries=[], balance_rows=[],
                     bills=bills)
        path = Path(d) / "results.jsonl"
        path.write_text("\n".join(simulate_results(cfg, "2026-10")) + "\n")
        t0 = time.perf_counter()
        lines = [json.loads(x) for x in path.read_text().splitlines()]
        base = time.perf_counter() - t0
        t0 = time.perf_counter()
        got = reconcile(cfg, path, "bench")
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = reconcile(cfg, path, "bench")
        second = time.perf_counter() - t0
        assert got["new"] == len(lines) and again["new"] == 0 and again["changed"] == 0
        print(f"{args.payees} payees, {len(lines)} result lines ({len(got['returned'])} returned)")
        print(f"  parse only (baseline): {base:.2f} s")
        print(f"  reconcile, first import: {first:.2f} s  ({first / base:.1f}× the baseline, "
              f"{len(lines) / first:,.0f} lines/s)")
        print(f"  reconcile, same file again: {second:.2f} s  ({second / base:.1f}×)")


if __name__ == "__main__":
    main()
