"""The BI marts' new costs at volume (issue #14).

    .venv/bin/python bench/bi.py                                   # 5M clicks, 300k orders
    .venv/bin/python bench/bi.py --clicks 1000000 --orders 60000
    .venv/bin/python bench/bi.py --postgres postgresql+psycopg://o2p@127.0.0.1:5432/bench

1. Clicks: a month of validated clicks written as Spark writes them (Parquet per event_date),
   then the two tables the marts read them through, in DuckDB from the Parquet, with the SQL dbt
   compiles for them (`int_clicks_aggregated_to_days`, `int_orders_joined_to_winning_clicks`),
   against the baseline of copying every click into a DuckDB table (what a staging table would do).
2. With --postgres: `o2p.bi.publish_postgres` of a BI copy holding an orders-sized mart (one row
   per order, the columns of fct_orders), twice (create, then DELETE + COPY).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DAY_US = 86_400_000_000
START_US = 1_788_192_000_000_000   # 2026-09-01T00:00+08:00


def timed(label: str, fn):
    t = time.perf_counter()
    out = fn()
    print(f"{label}: {time.perf_counter() - t:.2f} s", flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clicks", type=int, default=5_000_000)
    ap.add_argument("--orders", type=int, default=300_000)
    ap.add_argument("--postgres", help="a PostgreSQL URL: also time the PostgreSQL copy")
    args = ap.parse_args()
    import duckdb

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = tmp / "clicks_validated"
        con = duckdb.connect(str(tmp / "w.duckdb"))
        con.execute(f"""copy (
            select 'c' || i as event_id, {START_US} + (i * 997 % (30 * {DAY_US // 1_000_000})) * 1000000 as occurred_at_us,
                   case when i % 10 = 0 then 'bot' else 'storefront' end as source,
                   'P' || (i % 20000) as promoter_id, 'S' || i as share_id, 'B' || (i % 400000) as buyer_id,
                   'D' || (i % 400000) as device_id, 'SKU' || (i % 500) as sku_id,
                   (['moments', 'group', 'private_chat', 'mini_program', 'live', 'bot_push'])[1 + i % 6] as channel,
                   i % 50 <> 0 as is_valid,
                   case when i % 50 = 0 then 'ua_bot' when i % 97 = 0 then 'flood' else '' end as invalid_reasons,
                   strftime(make_timestamp({START_US} + (i * 997 % (30 * {DAY_US // 1_000_000})) * 1000000
                            + 28800000000)::date, '%Y-%m-%d') as event_date
            from range({args.clicks}) t(i)
        ) to '{root}' (format parquet, partition_by (event_date))""")
        con.execute(f"""create table attribution as select 'O' || i as order_id, 'c' || (i * 13 % {args.clicks})
                        as click_event_id from range({args.orders}) t(i)""")
        src = f"read_parquet('{root}/*/*.parquet', union_by_name = true)"
        timed(f"baseline: copy {args.clicks} clicks into a DuckDB table",
              lambda: con.execute(f"create table all_clicks as select * from {src}"))
        timed("int_clicks_aggregated_to_days from the Parquet", lambda: con.execute(f"""
            create table agg as select cast(make_timestamp(occurred_at_us + 28800000000) as date) as date_day,
                promoter_id, channel, source, count(*) as clicks, count(*) filter (where is_valid) as valid_clicks,
                count(*) filter (where list_contains(string_split(invalid_reasons, ','), 'ua_bot')) as bot_clicks,
                count(*) filter (where list_contains(string_split(invalid_reasons, ','), 'flood')) as flood_clicks
            from {src} group by all"""))
        timed(f"int_orders_joined_to_winning_clicks ({args.orders} orders) from the Parquet", lambda: con.execute(f"""
            create table won as select a.order_id, a.click_event_id, c.channel, c.source
            from attribution as a inner join {src} as c on a.click_event_id = c.event_id"""))
        print("rows:", con.execute("select (select count(*) from agg), (select count(*) from won)").fetchone())
        if args.postgres:
            from o2p import bi

            copy = tmp / "bi.duckdb"
            with duckdb.connect(str(copy)) as c:
                c.execute("create schema marts")
                c.execute(f"""create table marts.fct_orders as select 'O' || i as order_id, 'o-' || i as order_event_id,
                    'B' || i as buyer_id, null::varchar as share_id, {START_US} + i * 1000000 as paid_at_us,
                    make_timestamptz({START_US} + i * 1000000) as paid_at, date '2026-09-01' as paid_date,
                    '2026-09' as period, 1::integer as line_count, 10000::bigint as gmv_fen, 0::bigint as refunded_fen,
                    10000::bigint as net_fen, 'P' || (i % 20000) as promoter_id, 'last_click' as attribution_reason,
                    'c' || i as click_event_id, 'confirmed' as status, 0::bigint as confirmed_at_us,
                    0::bigint as eligible_at_us, null::bigint as cancelled_at_us,
                    null::timestamptz as cancelled_at, 'CNY' as currency from range({args.orders}) t(i)""")
            for label in ("first (create)", "again (DELETE + COPY)"):
                counts = timed(f"publish_postgres, {args.orders} orders, {label}",
                               lambda: bi.publish_postgres(copy, args.postgres))
                assert counts == {"marts.fct_orders": args.orders}, counts
        con.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
