"""The release's Python half at volume: settlement against the registry, the files, the ledger.

    .venv/bin/python bench/release.py                        # 1M lines, 100k promoters
    .venv/bin/python bench/release.py --lines 200000 --promoters 20000

Two periods on a SQLite registry: the first books every line; in the second 5 % of the lines
change (refunds) and 2 % are new. Reported per step, so the step that grows with history is
visible; the baseline is reading the entitlements from DuckDB as the settlement asset does.
This measures where the current design stops scaling (README, Known limits): it has no target.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def entitlements(n: int, promoters: int, seed: int, changed: float = 0.0, new: float = 0.0) -> list[dict]:
    rnd = random.Random(seed)
    rows = []
    for i in range(n + int(n * new)):
        net = 1000 + (i * 7919) % 50000
        if i < n and rnd.random() < changed:
            net //= 2
        rows.append({"promoter_id": f"P{i % promoters:06d}", "order_id": f"O{i:09d}", "line_id": "L1",
                     "role": "direct", "click_event_id": f"c{i}", "attribution_reason": "last_click",
                     "rate_e4": 1000, "net_fen": net, "entitled_fen": (1000 * net + 5000) // 10000})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--promoters", type=int, default=100_000)
    args = ap.parse_args()

    from o2p.config import load_config
    from o2p.reference import Promoter
    from o2p.registry import Registry
    from o2p.release import render
    from o2p.settlement import settle
    from o2p.timeutil import period_end_us

    with tempfile.TemporaryDirectory(prefix="o2p-bench-release-") as tmp:
        cfg = load_config(None, home=tmp)
        reg = Registry(f"sqlite:///{Path(tmp) / 'registry.sqlite'}")
        promoters = {f"P{i:06d}": Promoter(f"P{i:06d}", None, "silver", f"B{i}", f"o{i}", f"推客{i}", 0, None)
                     for i in range(args.promoters)}
        timings: list[tuple[str, float, int]] = []

        @contextmanager
        def step(name: str, rows: int):
            t0 = time.perf_counter()
            yield
            timings.append((name, time.perf_counter() - t0, rows))

        import duckdb
        import pandas as pd

        for period, seed, changed, new in (("2026-09", 1, 0.0, 0.0), ("2026-10", 1, 0.05, 0.02)):
            con = duckdb.connect()
            con.register("e", pd.DataFrame(entitlements(args.lines, args.promoters, seed, changed, new)))
            con.execute("create table ent as select * from e")
            with step(f"{period} read entitlements (baseline)", args.lines):   # as settlement.compute()
                ent = [{**r, "rate_e4": int(r["rate_e4"]), "net_fen": int(r["net_fen"]),
                        "entitled_fen": int(r["entitled_fen"])}
                       for r in con.execute("select * from ent").df().to_dict("records")]
            with step(f"{period} registry: booked before", args.lines):
                booked = reg.booked_before(period)
            carried = reg.carried_into("2026-08" if period == "2026-09" else "2026-09")
            with step(f"{period} settle", len(ent)):
                s = settle(period, period_end_us(period), ent, booked, carried, promoters, reg.prior_payouts(period),
                           threshold_fen=1000, tax_rule="cn_platform_cumulative")
            with step(f"{period} render files", len(s.statement)):
                files = render(cfg, f"b-{period}", s, promoters)
            reg.claim(period, f"b-{period}")
            with step(f"{period} registry: record ledger", len(s.statement)):
                reg.complete(
                    period, folder="/x", totals={"row_count": len(s.paid), "gross_fen": 0, "tax_fen": 0, "net_fen": 0},
                    files={n: "0" * 64 for n in files}, manifest_sha256="0" * 64, config_hash="h",
                    input_fingerprint="f",
                    entries=[{k: getattr(r, k) for k in ("promoter_id", "order_id", "line_id", "role", "entitled_fen",
                                                         "previously_booked_fen", "movement_fen")} for r in s.statement],
                    balance_rows=[dict(vars(b)) for b in s.balances])
            print(f"{period}: {len(ent)} lines, {len(s.statement)} moved, {len(s.paid)} paid, "
                  f"payout.csv {len(files['payout.csv']) // 1024} KiB, statement.csv {len(files['statement.csv']) // 1024} KiB")

        print(f"\n{'step':<44}{'rows':>10}{'seconds':>9}{'rows/s':>11}")
        for name, sec, rows in timings:
            print(f"{name:<44}{rows:>10}{sec:>9.2f}{rows / sec if sec else 0:>11.0f}")
        base = sum(sec for name, sec, _ in timings if "baseline" in name)
        rest = sum(sec for name, sec, _ in timings if "baseline" not in name)
        print(f"\nrelease steps {rest:.1f} s against {base:.1f} s to read the entitlements from DuckDB "
              f"(ratio {rest / base:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
