"""Attribution at volume: the Spark asset's code against one DuckDB SQL of the same rules.

    .venv/bin/python bench/attribution.py                       # 5M clicks, 300k orders
    .venv/bin/python bench/attribution.py --clicks 1000000 --orders 60000

1. Simulated input, written by DuckDB as a landing zone (`landing/<table>/event_date=D/`):
   clicks over 30 days from 600k buyers (a few buyers click a lot: Zipf-like), 3 % bot user
   agents, 40 flooding devices, 1 % producer retries (same event_id); orders placed minutes to
   days after one of the buyer's clicks, half of them carrying that click's share token, some
   with an unknown token.
2. Spark with the project's config (`o2p/default_config.yaml`: `local[2]`, its shuffle
   partitions and driver memory; `--conf k=v` to try others), session started first, its
   start-up on its own line; then what the daily assets run, the same functions
   (`run_click_validity`, `run_attribution`): read the landed days, drop conflicting copies,
   dedupe, flag, attribute, write the warehouse's day partitions. The first run in a session is
   what a daily Dagster run sees; the second shows the JIT's share. Then without the decision
   trace (`trace=False`) and with it, alternated, warm: the trace's cost.
3. DuckDB: one SQL with the same rules and sort-based windows on the same files, written as Parquet.
4. Both outputs are compared row for row (EXCEPT both ways must be empty).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from o2p.config import load_config  # noqa: E402
from o2p.timeutil import US_PER_DAY, US_PER_SECOND, shanghai_date_sql  # noqa: E402

START_US = 1_790_784_000_000_000   # 2026-10-01T00:00:00+08:00


def simulate(con, clicks: int, orders: int, out: Path, landing: Path) -> None:
    con.execute(f"""
    create or replace table clicks as
    with base as (
      select i,
        (hash(i, 'buyer') % 1000000) / 1e6 as u_buyer,
        (hash(i, 'time') % 1000000000) / 1e9 as u_time,
        hash(i, 'kind') % 1000 as k
      from range({clicks}) t(i))
    select
      'c' || lpad((case when k < 10 and i > 0 then i - 1 else i end)::varchar, 10, '0') as event_id,
      case when k >= 10 and k < 30 then 'D-flood' || (hash(i, 'fd') % 40)
           else 'D' || (floor(pow(u_buyer, 2.5) * 600000))::bigint end as device_id,
      'B' || (floor(pow(u_buyer, 2.5) * 600000))::bigint as buyer_id,
      'P' || (hash(i, 'prom') % 50000) as promoter_id,
      'S' || (hash(i, 'prom') % 50000) || '-' || (hash(i, 'share') % 20) as share_id,
      case when k >= 10 and k < 30
           then ({START_US} + (hash(i, 'fd') % 40) * {US_PER_DAY // 2} + (hash(i, 'ft') % {90 * US_PER_SECOND}))::bigint
           else ({START_US} + floor(u_time * {30 * US_PER_DAY}))::bigint end as occurred_at_us,
      case when k >= 970 then 'Mozilla/5.0 (compatible; Googlebot/2.1)'
           else 'Mozilla/5.0 (iPhone) MicroMessenger/8.0.44' end as user_agent,
      'o2p.clicks.v1' as _topic, (i % 3)::int as _partition, i as _offset, 0::bigint as _captured_at_us
    from base
    """)
    # the columns of a landed click the assets read
    con.execute(f"""
    create or replace table clicks as
    select *, {shanghai_date_sql('occurred_at_us::bigint')} as event_date, 'storefront' as source, 'SKU1' as sku_id,
           'moments' as channel
    from clicks
    """)
    # a retry repeats the previous click exactly (same event_id, same content)
    con.execute("""
    create or replace table clicks as
    select c.event_id, coalesce(p.device_id, c.device_id) as device_id, coalesce(p.buyer_id, c.buyer_id) as buyer_id,
           coalesce(p.promoter_id, c.promoter_id) as promoter_id, coalesce(p.share_id, c.share_id) as share_id,
           coalesce(p.occurred_at_us, c.occurred_at_us) as occurred_at_us,
           coalesce(p.user_agent, c.user_agent) as user_agent, c._topic, c._partition, c._offset, c._captured_at_us,
           c.event_date, c.source, c.sku_id, c.channel
    from clicks c left join (select * from clicks qualify row_number() over (partition by event_id order by _offset) = 1) p
      on p.event_id = c.event_id and p._offset < c._offset
    """)
    con.execute(f"""
    create or replace table orders as
    with pick as (
      select i, (hash(i, 'click') % {clicks}) as ci, hash(i, 'o') % 100 as k,
             (hash(i, 'delay') % 1000000) / 1e6 as u from range({orders}) t(i))
    select 'o' || lpad(i::varchar, 9, '0') as order_event_id, 'O' || i as order_id, c.buyer_id,
      case when k < 50 then c.share_id when k < 55 then 'S-unknown-' || i end as share_id,
      c.occurred_at_us + floor(pow(u, 3) * {9 * US_PER_DAY})::bigint as paid_at_us
    from pick join clicks c on c._offset = pick.ci
    """)
    con.execute(f"copy clicks to '{out / 'clicks.parquet'}' (format parquet, row_group_size 500000)")
    con.execute(f"copy orders to '{out / 'orders.parquet'}' (format parquet)")
    # the same events as a landing zone, as capture lays it out (one folder per event date)
    landing.mkdir(parents=True, exist_ok=True)
    con.execute(f"copy (select * exclude (event_date), event_date from clicks) to "
                f"'{landing / 'clicks'}' (format parquet, partition_by (event_date), write_partition_columns true, row_group_size 500000)")
    con.execute(f"""copy (select order_event_id as event_id, 'order_paid' as event_type, order_id, buyer_id, share_id,
                          paid_at_us as occurred_at_us, 'o2p.orders.v1' as _topic, 0 as _partition, row_number() over () as _offset,
                          0::bigint as _captured_at_us, {shanghai_date_sql('paid_at_us::bigint')} as event_date
                   from orders) to '{landing / 'orders'}' (format parquet, partition_by (event_date), write_partition_columns true)""")


VALIDITY_SQL = """
with clicks as (
  select * from read_parquet('{clicks}')
  qualify row_number() over (partition by event_id order by _captured_at_us, _topic, _partition, _offset) = 1),
flagged as (
  select *,
    count(*) over (partition by device_id order by occurred_at_us
                   range between {window} preceding and {window} following) as flood_count,
    coalesce(regexp_matches(user_agent, '{pattern}'), false) as is_ua_bot
  from clicks)
select event_id, occurred_at_us, buyer_id, share_id, promoter_id, device_id, flood_count,
       not is_ua_bot and flood_count <= {flood_max} as is_valid,
       concat_ws(',', case when is_ua_bot then 'ua_bot' end,
                      case when flood_count > {flood_max} then 'flood' end) as invalid_reasons
from flagged
"""

ATTRIBUTION_SQL = """
with valid as (select * from read_parquet('{valid}') where is_valid),
events as (
  select buyer_id, share_id, occurred_at_us as ts, 0 as kind, event_id as click_id, null as order_event_id,
         {{'ts': occurred_at_us, 'id': event_id, 'promoter_id': promoter_id}} as click
  from valid
  union all
  select buyer_id, share_id, paid_at_us, 1, null, order_event_id, null
  from read_parquet('{orders}')),
scanned as (
  select *,
    last_value(click ignore nulls) over (partition by buyer_id order by ts, kind, click_id desc nulls last
                                         rows between unbounded preceding and current row) as latest,
    last_value(click ignore nulls) over (partition by buyer_id, share_id order by ts, kind, click_id desc nulls last
                                         rows between unbounded preceding and current row) as latest_share,
    sum(1 - kind) over (partition by buyer_id order by ts range between {lookback_minus_1} preceding and current row)
      as candidates_considered
  from events),
picked as (
  select order_event_id,
    case when latest_share is not null and latest_share.ts > ts - {lookback} then latest_share
         when latest is not null and latest.ts > ts - {lookback} then latest end as chosen,
    case when latest_share is not null and latest_share.ts > ts - {lookback} then 'share_token'
         when latest is not null and latest.ts > ts - {lookback} then 'last_click'
         else 'organic' end as attribution_reason,
    candidates_considered::int as candidates_considered
  from scanned where kind = 1)
select o.order_id, o.order_event_id, o.buyer_id, o.share_id, o.paid_at_us,
       p.chosen.promoter_id as promoter_id, p.chosen.id as click_event_id,
       p.chosen.ts as click_occurred_at_us, p.attribution_reason, p.candidates_considered
from read_parquet('{orders}') o join picked p using (order_event_id)
"""

ATTR_COLS = ("order_id, order_event_id, buyer_id, share_id, paid_at_us, promoter_id, click_event_id, "
             "click_occurred_at_us, attribution_reason, candidates_considered")
VALIDITY_COLS = "event_id, is_valid, invalid_reasons, flood_count"


def compare(con, a: str, b: str, cols: str) -> tuple[int, int]:
    return con.sql(f"""select (select count(*) from (select {cols} from {a} except all select {cols} from {b})),
                              (select count(*) from (select {cols} from {b} except all select {cols} from {a}))
                    """).fetchall()[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clicks", type=int, default=5_000_000)
    ap.add_argument("--orders", type=int, default=300_000)
    ap.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE",
                    help="a Spark setting over the project's config (repeatable), e.g. spark.sql.shuffle.partitions=8")
    args = ap.parse_args()

    import re

    import duckdb

    with tempfile.TemporaryDirectory(prefix="o2p-bench-attr-") as tmp:
        tmp = Path(tmp)
        conf = "".join(f'    {k}: "{v}"\n' for k, v in (c.split("=", 1) for c in args.conf))
        (tmp / "o2p.yaml").write_text(f"spark:\n  conf:\n{conf}" if conf else "{}\n")
        cfg = load_config(tmp / "o2p.yaml", home=tmp)
        con = duckdb.connect()
        t0 = time.perf_counter()
        simulate(con, args.clicks, args.orders, tmp, cfg.landing_path)
        n_clicks = con.sql(f"select count(*) from '{tmp / 'clicks.parquet'}'").fetchall()[0][0]
        n_orders = con.sql(f"select count(*) from '{tmp / 'orders.parquet'}'").fetchall()[0][0]
        print(f"simulated {n_clicks} clicks and {n_orders} orders in {time.perf_counter() - t0:.1f} s")

        from o2p import layout
        from o2p.layout import landed_dates
        from pipelines.assets.attribution.spark_jobs import run_attribution, run_click_validity
        from pipelines.lib.spark import get_spark

        t0 = time.perf_counter()
        spark = get_spark(cfg)
        spark.range(1).count()
        startup = time.perf_counter() - t0

        click_days, order_days = landed_dates(cfg.landing_path, "clicks"), landed_dates(cfg.landing_path, "orders")
        validated = layout.warehouse_table(cfg.warehouse_path, layout.CLICKS_VALIDATED)
        attributed = layout.warehouse_table(cfg.warehouse_path, layout.ORDER_ATTRIBUTION)
        cv = cfg.click_validity
        fmt = dict(clicks=tmp / "clicks.parquet", orders=tmp / "orders.parquet", valid=f"{validated}/*/*.parquet",
                   window=cv.flood_window_seconds * US_PER_SECOND, flood_max=cv.flood_max_clicks,
                   pattern="(?i)(" + "|".join(re.escape(p) for p in cv.bot_user_agent_patterns) + ")",
                   lookback=cfg.attribution.lookback_days * US_PER_DAY,
                   lookback_minus_1=cfg.attribution.lookback_days * US_PER_DAY - 1)

        def spark_validity():
            run_click_validity(spark, cfg, click_days[0], click_days[-1])

        def spark_attribution(trace=True):
            run_attribution(spark, cfg, order_days[0], order_days[-1], {}, trace=trace)

        def duck(sql: str, out: str):
            return lambda: duckdb.connect().execute(f"copy ({sql.format(**fmt)}) to '{tmp / out}' (format parquet)")

        timings = {}
        for name, fn in (("validity/Spark", spark_validity), ("validity/DuckDB", duck(VALIDITY_SQL, "duck_valid.parquet")),
                         ("attribution/Spark", spark_attribution), ("attribution/DuckDB", duck(ATTRIBUTION_SQL, "duck_out.parquet")),
                         ("validity/Spark again", spark_validity), ("attribution/Spark again", spark_attribution),
                         # the decision trace's cost (issue #14): without it, then with it again, alternated
                         # (a run without it removes the days' trace: the last run writes it again)
                         ("attribution/Spark no trace", lambda: spark_attribution(trace=False)),
                         ("attribution/Spark no trace 2", lambda: spark_attribution(trace=False)),
                         ("attribution/Spark third", spark_attribution)):
            t0 = time.perf_counter()
            fn()
            timings[name] = time.perf_counter() - t0
        v_diff = compare(con, f"'{validated}/*/*.parquet'", f"'{tmp}/duck_valid.parquet'", VALIDITY_COLS)
        a_diff = compare(con, f"'{attributed}/*/*.parquet'", f"'{tmp}/duck_out.parquet'", ATTR_COLS)
        n_attr = con.sql(f"select count(*), count(promoter_id) from '{tmp}/duck_out.parquet'").fetchall()[0]
        n_valid = con.sql(f"select count(*) filter (where is_valid) from '{tmp}/duck_valid.parquet'").fetchall()[0][0]

        sc = spark.sparkContext.getConf()
        print(f"\nSpark session start-up: {startup:.1f} s (not in the figures below)")
        print(f"spark.master {cfg.spark.master}, spark.sql.shuffle.partitions "
              f"{spark.conf.get('spark.sql.shuffle.partitions')}, spark.driver.memory {sc.get('spark.driver.memory', '?')} "
              "(the project's config" + (f" with {', '.join(args.conf)})" if args.conf else ")") + "\n")
        print(f"{'stage / engine':<30}{'seconds':>9}{'clicks/s':>12}{'orders/s':>11}")
        for name, sec in timings.items():
            print(f"{name:<30}{sec:>9.2f}{n_clicks / sec:>12.0f}{n_orders / sec:>11.0f}")
        first = (timings["validity/Spark"] + timings["attribution/Spark"]) / (
            timings["validity/DuckDB"] + timings["attribution/DuckDB"])
        again = (timings["validity/Spark again"] + timings["attribution/Spark again"]) / (
            timings["validity/DuckDB"] + timings["attribution/DuckDB"])
        print(f"\nratio Spark / DuckDB, click validity + attribution: {first:.2f} first run in the session "
              f"(target ≤ 2: {'met' if first <= 2 else 'NOT met'}), {again:.2f} second run")
        print(f"  click validity {timings['validity/Spark'] / timings['validity/DuckDB']:.2f}, "
              f"attribution {timings['attribution/Spark'] / timings['attribution/DuckDB']:.2f} (first run); "
              f"{timings['validity/Spark again'] / timings['validity/DuckDB']:.2f} and "
              f"{timings['attribution/Spark again'] / timings['attribution/DuckDB']:.2f} (second)")
        with_trace = (timings["attribution/Spark again"] + timings["attribution/Spark third"]) / 2
        without = (timings["attribution/Spark no trace"] + timings["attribution/Spark no trace 2"]) / 2
        trace_dir = layout.warehouse_table(cfg.warehouse_path, layout.ATTRIBUTION_DECISIONS)
        n_trace = con.sql(f"select count(*) from '{trace_dir}/*/*.parquet'").fetchall()[0][0]
        print(f"decision trace: attribution {with_trace:.2f} s with it, {without:.2f} s without "
              f"(mean of two warm runs each, alternated): +{with_trace - without:.2f} s "
              f"({(with_trace / without - 1) * 100:+.0f} %) for {n_trace} trace rows")
        # The DuckDB SQL writes no trace: like for like, Spark's validity (second run) and its
        # attribution without the trace (warm) against the same DuckDB figures
        like = (timings["validity/Spark again"] + without) / (timings["validity/DuckDB"] + timings["attribution/DuckDB"])
        print(f"ratio like for like (no trace on either side, Spark warm): {like:.2f} "
              f"(target ≤ 2: {'met' if like <= 2 else 'NOT met'})")
        same = v_diff == (0, 0) and a_diff == (0, 0)
        print(f"click validity: {n_valid} valid of {n_clicks}; rows only in Spark {v_diff[0]}, only in DuckDB {v_diff[1]}")
        print(f"attribution: {n_attr[0]} orders, {n_attr[1]} attributed; rows only in Spark {a_diff[0]}, "
              f"only in DuckDB {a_diff[1]} -> {'identical' if same else 'DIFFERENT'}")
        return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
