"""Quality gates at volume: the landing, click-validity and attribution suites against the Spark
transforms they guard, on the same landed data, in the same run.

    .venv/bin/python bench/gates.py                      # 1M clicks, 60k orders over 10 days
    .venv/bin/python bench/gates.py --clicks 200000 --orders 12000

1. Landed Parquet in the capture layout (landing/<table>/event_date=D/), written by DuckDB:
   clicks from 200k buyers, 2 % bot user agents; orders one to two lines after a buyer's click;
   a few refunds.
2. The transforms: click validity and attribution for the 10 days, as the Spark assets run them
   (session started first; its start-up on its own line).
3. The gates over the same days (`pipelines/lib/gates.py`): DuckDB builds each suite's frame
   from the Parquet files, Great Expectations validates it through a checkpoint (with Data Docs
   rebuilt, as in a run). Reported per suite, then the ratio gates / transforms.
4. What the release adds: the dead-letter share of every capture date, judged fresh, the first
   time (every landed file's capture dates read) and again (counts cached per file).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from o2p.timeutil import US_PER_DAY, shanghai_date_sql  # noqa: E402

START_US = 1_788_192_000_000_000   # 2026-09-01T00:00:00+08:00
DAYS = 10


def land(con, landing: Path, clicks: int, orders: int) -> None:
    now = START_US + 40 * US_PER_DAY
    day = shanghai_date_sql("occurred_at_us")
    con.execute(f"""
    create table c as
    select 'c' || i as event_id, 'click' as event_type,
           {START_US} + (hash(i, 't') % {DAYS * US_PER_DAY})::bigint as occurred_at_us,
           'storefront' as source, 1::int as schema_version,
           'P' || (hash(i, 'p') % 20000) as promoter_id, 'S' || (hash(i, 's') % 100000) as share_id,
           'B' || (hash(i, 'b') % 200000) as buyer_id, 'D' || (hash(i, 'b') % 200000) as device_id,
           'SKU' || (hash(i, 'k') % 500) as sku_id, 'group' as channel,
           case when hash(i, 'u') % 50 = 0 then 'Googlebot/2.1' else 'Mozilla/5.0 MicroMessenger' end as user_agent,
           null::varchar as ip_hash, 'o2p.clicks.v1' as _topic, (i % 3)::int as _partition, i as _offset,
           {now}::bigint as _captured_at_us
    from range({clicks}) t(i)""")
    con.execute(f"""
    create table o as
    select 'o' || i as event_id, 'order_paid' as event_type, c.occurred_at_us + 600000000 as occurred_at_us,
           'storefront' as source, 1::int as schema_version, 'O' || i as order_id, c.buyer_id,
           case when i % 2 = 0 then c.share_id end as share_id, 'CNY' as currency,
           [{{'line_id': 'L1', 'sku_id': c.sku_id, 'quantity': 1::bigint, 'unit_price_fen': 5000::bigint,
              'discount_fen': 0::bigint, 'paid_fen': 5000::bigint}}] as lines,
           'o2p.orders.v1' as _topic, (i % 3)::int as _partition, i as _offset, {now}::bigint as _captured_at_us
    from range({orders}) t(i) join c on c._offset = (hash(i, 'pick') % {clicks})""")
    con.execute(f"""
    create table r as
    select 'r' || i as event_id, 'refund' as event_type, o.occurred_at_us + 3600000000 as occurred_at_us,
           'storefront' as source, 1::int as schema_version, 'RF' || i as refund_id, o.order_id,
           'L1' as line_id, 1000::bigint as amount_fen,
           'o2p.refunds.v1' as _topic, 0::int as _partition, i as _offset, {now}::bigint as _captured_at_us
    from range({orders // 20}) t(i) join o on o._offset = i * 20""")
    landing.mkdir(parents=True, exist_ok=True)
    for name, table in (("clicks", "c"), ("orders", "o"), ("refunds", "r")):
        con.execute(f"""copy (select *, occurred_at_us::varchar as occurred_at, {day} as event_date from {table})
                        to '{landing / name}' (format parquet, partition_by (event_date), write_partition_columns true, compression zstd)""")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clicks", type=int, default=1_000_000)
    ap.add_argument("--orders", type=int, default=60_000)
    args = ap.parse_args()

    import duckdb

    from o2p.config import load_config
    from pipelines.lib.partitions import window_dates

    with tempfile.TemporaryDirectory(prefix="o2p-bench-gates-") as tmp:
        tmp = Path(tmp)
        (tmp / "o2p.yaml").write_text('quality:\n  max_event_age_days: 36500\n'
                                      'spark:\n  conf:\n    spark.sql.shuffle.partitions: "4"\n    spark.driver.memory: "4g"\n')
        cfg = load_config(tmp / "o2p.yaml", home=tmp / "home")
        t0 = time.perf_counter()
        with duckdb.connect() as con:
            land(con, cfg.landing_path, args.clicks, args.orders)
            counts = {n: con.execute(f"select count(*) from {t}").fetchone()[0] for n, t in
                      (("clicks", "c"), ("orders", "o"), ("refunds", "r"))}
        days = window_dates("2026-09-01", f"2026-09-{DAYS:02d}")
        print(f"landed {counts} over {DAYS} days in {time.perf_counter() - t0:.1f} s")

        from pipelines.assets.attribution.spark_jobs import run_attribution, run_click_validity
        from pipelines.lib import gates
        from pipelines.lib.spark import get_spark

        t0 = time.perf_counter()
        spark = get_spark(cfg)
        spark.range(1).count()
        print(f"Spark session start-up: {time.perf_counter() - t0:.1f} s (not in the figures below)\n")
        rows = {}
        timings = {}
        t0 = time.perf_counter()
        run_click_validity(spark, cfg, days[0], days[-1])
        timings["transform: click validity (Spark)"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        run_attribution(spark, cfg, days[0], days[-1], {})
        timings["transform: attribution (Spark)"] = time.perf_counter() - t0
        import great_expectations  # noqa: F401 - its import (~3 s) is paid once per process, not per gate
        results = {}
        with duckdb.connect() as con:
            for name, fn in gates.STAGES.items():
                t0 = time.perf_counter()
                results[name] = fn(con, cfg, days)
                timings[f"gate: {name}"] = time.perf_counter() - t0
                rows[f"gate: {name}"] = results[name].rows
        # at release: the dead-letter share of every capture date, judged fresh (the per-file
        # capture-date counts are cached, so the second release reads no landed file again)
        landed_total = sum(counts.values())
        for label in ("first", "cached"):
            t0 = time.perf_counter()
            results[f"deadletters ({label})"] = gates.deadletter_share(cfg)
            release_s = time.perf_counter() - t0
            timings[f"release: dead-letter share ({label})"] = release_s
            rows[f"release: dead-letter share ({label})"] = landed_total
        rows["transform: click validity (Spark)"] = counts["clicks"]
        rows["transform: attribution (Spark)"] = counts["orders"]

        print(f"{'stage':<36}{'rows':>10}{'seconds':>9}{'rows/s':>11}")
        for name, sec in timings.items():
            print(f"{name:<36}{rows[name]:>10}{sec:>9.2f}{rows[name] / sec:>11.0f}")
        gate_s = sum(v for k, v in timings.items() if k.startswith("gate"))
        transform_s = sum(v for k, v in timings.items() if k.startswith("transform"))
        print(f"\ngates {gate_s:.2f} s for {sum(v for k, v in rows.items() if k.startswith('gate'))} rows judged; "
              f"transforms {transform_s:.2f} s; ratio gates / transforms {gate_s / transform_s:.2f}")
        print("every gate passed" if all(r.success for r in results.values()) else
              "FAILED: " + "; ".join(r.describe() for r in results.values() if not r.success))
        return 0 if all(r.success for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
