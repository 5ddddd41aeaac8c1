"""The release at volume: settlement against the registry, the files, the ledger.

    .venv/bin/python bench/release.py                        # 1M lines, 100k promoters
    .venv/bin/python bench/release.py --lines 200000 --promoters 20000

Three periods on a SQLite registry: the first books every line; in each later one 5 % of the
lines change (refunds) and 2 % more are new. Each period is settled twice in the same run, and the two
results must be identical:

* baseline, the previous design: every entitlement read into Python, the whole ledger loaded
  (`Registry.booked_before`), the movement computed in Python (`o2p.settlement.settle`);
* the settlement asset's design: the DuckDB ledger mirror brought in step with the registry
  (`o2p.ledger_mirror.sync`: the first time every period, then only the newest), the movement
  as one DuckDB join returning the lines that moved, balances and tax in Python over those.

Then the files are rendered and the ledger recorded, as the release does.
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


# (period, seed, share of lines changed, share of new lines); entitlements are cumulative
PERIODS = (("2026-09", 1, 0.0, 0.0), ("2026-10", 1, 0.05, 0.02), ("2026-11", 2, 0.05, 0.04))


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
    from o2p.settlement import ledger_entries, settle
    from o2p.timeutil import period_end_us, previous_period

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

        from o2p import ledger_mirror
        from o2p.settlement import Settlement, balances

        wh = duckdb.connect(str(Path(tmp) / "warehouse.duckdb"))
        wh.execute("create schema marts")
        for period, seed, changed, new in PERIODS:
            frame = pd.DataFrame(entitlements(args.lines, args.promoters, seed, changed, new))
            frame.insert(0, "period", period)
            wh.register("e", frame)
            wh.execute("create or replace table marts.ent as select * from e")
            wh.unregister("e")
            n = len(frame)
            carried = reg.carried_into(previous_period(period))
            prior = reg.prior_payouts(period)
            with step(f"{period} baseline: read entitlements", n):
                ent = [{**r, "rate_e4": int(r["rate_e4"]), "net_fen": int(r["net_fen"]),
                        "entitled_fen": int(r["entitled_fen"])}
                       for r in wh.execute("select * from marts.ent").df().to_dict("records")]
            t0 = time.perf_counter()
            booked = reg.booked_before(period)
            timings.append((f"{period} baseline: booked before (entries)", time.perf_counter() - t0, len(booked)))
            with step(f"{period} baseline: settle in Python", n):
                old = settle(period, period_end_us(period), ent, booked, carried, promoters, prior,
                             threshold_fen=1000, tax_rule="cn_platform_cumulative")
            del ent, booked
            t0 = time.perf_counter()
            synced = ledger_mirror.sync(wh, reg, period)
            loaded = sum(reg.ledger_totals(period)[p][0] for p in synced["reloaded"])
            timings.append((f"{period} mirror: sync (entries loaded)", time.perf_counter() - t0, loaded))
            with step(f"{period} mirror: movement in DuckDB", n):
                statement = ledger_mirror.movements(wh, period, entitlements="marts.ent")
            with step(f"{period} mirror: balances in Python", len(statement)):
                s = Settlement(period, statement, balances(
                    period, period_end_us(period), statement, carried, promoters, prior,
                    threshold_fen=1000, tax_rule="cn_platform_cumulative"))
            key = lambda r: (r.promoter_id, r.order_id, r.line_id, r.role)   # noqa: E731
            assert sorted(old.statement, key=key) == s.statement and old.balances == s.balances, \
                f"{period}: the two designs disagree"
            with step(f"{period} render files", len(s.statement)):
                files = render(cfg, f"b-{period}", s, promoters)
            reg.claim(period, f"b-{period}")
            with step(f"{period} registry: record ledger", len(s.statement)):
                reg.complete(
                    period, folder="/x", totals={"row_count": len(s.paid), "gross_fen": 0, "tax_fen": 0, "net_fen": 0},
                    files={n: "0" * 64 for n in files}, manifest_sha256="0" * 64, config_hash="h",
                    input_fingerprint="f",
                    entries=ledger_entries(s.statement),
                    balance_rows=[dict(vars(b)) for b in s.balances])
            print(f"{period}: {n} lines, {len(s.statement)} moved, {len(s.paid)} paid, mirror reloaded "
                  f"{synced['reloaded'] or 'nothing'}, identical in both designs; payout.csv "
                  f"{len(files['payout.csv']) // 1024} KiB, statement.csv {len(files['statement.csv']) // 1024} KiB")

        print(f"\n{'step':<44}{'rows':>10}{'seconds':>9}{'rows/s':>11}")
        for name, sec, rows in timings:
            print(f"{name:<44}{rows:>10}{sec:>9.2f}{rows / sec if sec else 0:>11.0f}")
        for period, *_ in PERIODS:
            base = sum(sec for name, sec, _ in timings if name.startswith(f"{period} baseline"))
            mirror = sum(sec for name, sec, _ in timings if name.startswith(f"{period} mirror"))
            print(f"{period} settlement: DuckDB mirror {mirror:.2f} s against the Python baseline {base:.2f} s "
                  f"(ratio {mirror / base:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
