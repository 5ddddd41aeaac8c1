"""Conflicting event ids at volume: what `pipelines/lib/event_ids.refresh` (run before every
attribution and commission run) costs over the whole landing zone, against the least any
dedupe of it costs — one DuckDB pass counting distinct event ids over the same files — in the
same run.

    .venv/bin/python bench/event_ids.py                      # 1M clicks, 60k orders, 3k refunds
    .venv/bin/python bench/event_ids.py --clicks 5000000 --orders 300000

The landed data is bench/gates.py's (capture layout, zstd Parquet), plus conflicting copies: one
order in a thousand re-sent later under the same event_id with another amount, and one click in
ten thousand re-used by an order. The result is checked: exactly those copies are losers.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gates import land  # noqa: E402

from o2p.timeutil import shanghai_date_sql  # noqa: E402


def conflicts(con, landing: Path, clicks: int) -> int:
    """Later copies with other content, in files of their own (as a later capture batch writes):
    every thousandth order re-sent for another order id, and orders re-using click ids."""
    con.execute("create table x1 as select * replace (_captured_at_us + 1000000 as _captured_at_us, "
                "9 as _partition, _offset + 10000000 as _offset, 'O-other-' || order_id as order_id) "
                "from o where _offset % 1000 = 0")
    con.execute("create table x2 as select * replace ('c' || (_offset * 10000) as event_id, "
                "_captured_at_us + 2000000 as _captured_at_us, 8 as _partition, _offset + 20000000 as _offset) "
                f"from o where _offset * 10000 < {clicks}")
    day = shanghai_date_sql("occurred_at_us")
    for t in ("x1", "x2"):
        con.execute(f"""copy (select *, occurred_at_us::varchar as occurred_at, {day} as event_date from {t})
                        to '{landing / "orders"}' (format parquet, partition_by (event_date), write_partition_columns true,
                        compression zstd, filename_pattern '{t}_{{uuid}}', append true)""")
    return sum(con.execute(f"select count(*) from {t}").fetchone()[0] for t in ("x1", "x2"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clicks", type=int, default=1_000_000)
    ap.add_argument("--orders", type=int, default=60_000)
    args = ap.parse_args()

    import duckdb
    import pyarrow.parquet as pq

    from o2p.config import load_config
    from o2p.quoting import file_list
    from pipelines.lib import event_ids

    with tempfile.TemporaryDirectory(prefix="o2p-bench-event-ids-") as tmp:
        cfg = load_config(None, home=Path(tmp) / "home")
        with duckdb.connect() as con:
            land(con, cfg.landing_path, args.clicks, args.orders)
            expected = conflicts(con, cfg.landing_path, args.clicks)
        files = [f for t in ("clicks", "orders", "refunds") for f in sorted((cfg.landing_path / t).glob("*/*.parquet"))]
        print(f"landed {args.clicks} clicks, {args.orders} orders and {expected} conflicting copies in {len(files)} files")

        t0 = time.perf_counter()
        with duckdb.connect() as con:
            distinct = con.execute(f"select count(distinct event_id) from read_parquet({file_list(files)}, "
                                   "union_by_name = true)").fetchone()[0]
        base = time.perf_counter() - t0
        t0 = time.perf_counter()
        found = event_ids.refresh(cfg)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = event_ids.refresh(cfg)     # with the previous judgement read back (decisions stick)
        second = time.perf_counter() - t0
        losers = pq.read_table(event_ids.path(cfg)).to_pylist()
        assert found == again == expected, (found, again, expected)
        assert all(r["_partition"] in (8, 9) for r in losers), "a first-captured copy was judged a loser"
        print(f"baseline: count(distinct event_id) over {distinct} ids   {base:6.2f} s")
        print(f"event_ids.refresh, first                           {first:6.2f} s   ({first / base:.2f}× baseline)")
        print(f"event_ids.refresh, again (previous file read back) {second:6.2f} s   ({second / base:.2f}× baseline)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
