"""The release registry at volume: recording a period's ledger entries and reading them back,
on SQLite and on a scratch PostgreSQL server (Debian's package; skipped when not installed).

    .venv/bin/python bench/registry.py                 # 1M entries
    .venv/bin/python bench/registry.py --entries 200000

The release records every moved line of a period in one transaction; the settlement's ledger
mirror reads a period back (o2p/ledger_mirror.py). Baseline, in the same run: the same entries
recorded as batched INSERTs (SQLAlchemy executemany), which is what PostgreSQL used before COPY.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=1_000_000)
    args = ap.parse_args()

    from contextlib import ExitStack

    from o2p.registry import Registry, _insert_ledger, batches

    entries = [{"promoter_id": f"P{i % 100_000:06d}", "order_id": f"O{i:09d}", "line_id": "L1", "role": "direct",
                "entitled_fen": 100 + i % 5000, "previously_booked_fen": 0, "movement_fen": 100 + i % 5000}
               for i in range(args.entries)]
    results = []
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="o2p-bench-registry-") as tmp:
        urls = [("sqlite", f"sqlite:///{Path(tmp) / 'registry.sqlite'}")]
        try:
            from tests.postgres import postgres_server

            pg = stack.enter_context(postgres_server())
            urls.append(("postgresql", pg.database("bench_registry")))
        except (FileNotFoundError, RuntimeError) as exc:
            print(f"(PostgreSQL skipped: {exc})")
        for name, url in urls:
            reg = Registry(url)
            for period, use_copy in (("2026-09", False), ("2026-10", True)):
                with reg.engine.begin() as c:
                    c.execute(batches.insert().values(period=period, batch_id=period, status="released"))
                    t0 = time.perf_counter()
                    _insert_ledger(c, period, entries, use_copy=use_copy)
                results.append((name, "record: batched INSERT (baseline)" if not use_copy else
                                "record: as the release does", time.perf_counter() - t0))
            t0 = time.perf_counter()
            n = sum(1 for _ in reg.ledger_entries("2026-10"))
            assert n == args.entries
            results.append((name, "read back one period", time.perf_counter() - t0))
            reg.engine.dispose()

    print(f"\n{'registry':<12}{'step':<36}{'entries':>10}{'seconds':>9}{'entries/s':>11}")
    for name, step, sec in results:
        print(f"{name:<12}{step:<36}{args.entries:>10}{sec:>9.2f}{args.entries / sec:>11.0f}")
    for name in dict.fromkeys(n for n, _, _ in results):
        base = next(s for n, st, s in results if n == name and "baseline" in st)
        new = next(s for n, st, s in results if n == name and "release does" in st)
        print(f"{name}: recording as the release does / batched INSERT = {new / base:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
