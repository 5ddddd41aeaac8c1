"""Click validity (rulebook §3) and last-click attribution (rulebook §4) in PySpark.

Both are sort-based windows over (device | buyer, time) rather than range
joins: one shuffle by key, one sort, a linear scan. Times are int64
microseconds since the epoch, so offsets and time zones never enter the
comparisons; dates are the Asia/Shanghai `event_date` computed at capture.

Partition dependencies (why the input windows are what they are):
- validity of a click on day D needs clicks within ±60 s, so days D−1..D+1;
- attribution of an order on day D needs valid clicks in (t − 7 days, t], so
  clicked days D−7..D (their validity computed as above).
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from o2p.config import Config
from o2p.timeutil import US_PER_DAY, US_PER_SECOND
from pipelines.lib.partitions import window_dates

CLICK_COLUMNS = [
    "event_id", "occurred_at_us", "event_date", "source", "promoter_id", "share_id", "buyer_id",
    "device_id", "sku_id", "channel", "user_agent", "_topic", "_partition", "_offset",
]


def _existing(root: Path, dates: list[str]) -> list[str]:
    return [str(root / f"event_date={d}") for d in dates if (root / f"event_date={d}").is_dir()]


def dedupe(df, key: str = "event_id"):
    """Keep one row per event_id: the earliest captured (a producer retry repeats the event)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    w = Window.partitionBy(key).orderBy("_topic", "_partition", "_offset")
    return df.withColumn("_rn", F.row_number().over(w)).where("_rn = 1").drop("_rn")


def click_validity(spark, cfg: Config, clicks):
    """Flag every click: `ua_bot` and/or `flood`. Input: deduplicated clicks."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    cv = cfg.click_validity
    pattern = "(?i)(" + "|".join(_regex_escape(p) for p in cv.bot_user_agent_patterns) + ")"
    window_us = cv.flood_window_seconds * US_PER_SECOND
    w = Window.partitionBy("device_id").orderBy("occurred_at_us").rangeBetween(-window_us, window_us)
    flagged = (
        clicks.withColumn("flood_count", F.count(F.lit(1)).over(w))
        .withColumn("is_ua_bot", F.coalesce(F.col("user_agent").rlike(pattern), F.lit(False)))
        .withColumn("is_flood", F.col("flood_count") > cv.flood_max_clicks)
    )
    reasons = F.concat_ws(
        ",",
        F.when(F.col("is_ua_bot"), F.lit("ua_bot")),
        F.when(F.col("is_flood"), F.lit("flood")),
    )
    return flagged.withColumn("invalid_reasons", reasons).withColumn(
        "is_valid", ~(F.col("is_ua_bot") | F.col("is_flood"))
    )


def _regex_escape(s: str) -> str:
    import re

    return re.escape(s)


def last_click(spark, cfg: Config, orders, valid_clicks, self_buyers):
    """Attribute each order (one row per order_paid event) by share token, else last click.

    orders: order_event_id, order_id, buyer_id, share_id, paid_at_us
    valid_clicks: event_id, occurred_at_us, buyer_id, share_id, promoter_id
    self_buyers: promoter_id, promoter_buyer_id (for self_purchase: deny)

    Two sort-based scans, no range join:
    - per buyer, clicks and orders in time order: the last click seen before an order is its
      latest candidate, and a range frame counts the candidates in (t − lookback, t];
    - per (buyer, share token), the same over the clicks whose token some order of that buyer
      carries (a semi-join makes this input small): the latest click with the order's token.
    Within an instant clicks sort before orders (a click at the order's instant counts) and by
    event_id *descending*, so the last one seen is the smallest event_id (byte order).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    lookback = cfg.attribution.lookback_days * US_PER_DAY
    # Only the clicks of buyers who ordered can be candidates (most people who click do not buy):
    # a broadcast semi-join drops the rest before the shuffle.
    order_buyers = orders.select("buyer_id").distinct()
    clicks = valid_clicks.join(F.broadcast(order_buyers), "buyer_id", "left_semi")
    c = clicks.select(
        "buyer_id", "share_id", F.col("occurred_at_us").alias("ts"), F.lit(0).alias("kind"),
        F.col("event_id").alias("click_id"),
        F.struct(F.col("occurred_at_us").alias("ts"), F.col("event_id").alias("id"),
                 F.col("promoter_id").alias("promoter_id")).alias("click"),
        *[F.lit(None).cast(t).alias(n) for n, t in (("order_event_id", "string"), ("order_id", "string"),
                                                     ("event_date", "string"))],
    )
    o = orders.select(   # the order's own columns ride along: no join back afterwards
        "buyer_id", "share_id", F.col("paid_at_us").alias("ts"), F.lit(1).alias("kind"),
        F.lit(None).cast("string").alias("click_id"),
        F.lit(None).cast("struct<ts:bigint,id:string,promoter_id:string>").alias("click"),
        "order_event_id", "order_id", F.col("event_date").cast("string").alias("event_date"),
    )
    order_cols = [F.col("ts"), F.col("kind"), F.col("click_id").desc_nulls_last()]
    upto = (Window.unboundedPreceding, Window.currentRow)
    by_buyer = Window.partitionBy("buyer_id").orderBy(*order_cols).rowsBetween(*upto)
    by_share = Window.partitionBy("buyer_id", "share_id").orderBy(*order_cols).rowsBetween(*upto)
    in_window = Window.partitionBy("buyer_id").orderBy("ts").rangeBetween(-(lookback - 1), 0)
    # One shuffle by buyer. The two windows in time order share one sort (the range window's
    # order is a prefix of the other's); the share-token window sorts the same partitions again.
    scanned = (
        c.unionByName(o).repartition("buyer_id")
        .withColumn("latest", F.last("click", ignorenulls=True).over(by_buyer))
        .withColumn("candidates_considered", F.sum(1 - F.col("kind")).over(in_window))
        .withColumn("latest_share", F.last("click", ignorenulls=True).over(by_share))
        .where(F.col("kind") == 1)
    )
    lower = F.col("ts") - F.lit(lookback)
    share_ok = F.col("latest_share").isNotNull() & (F.col("latest_share.ts") > lower)
    last_ok = F.col("latest").isNotNull() & (F.col("latest.ts") > lower)
    chosen = F.when(share_ok, F.col("latest_share")).when(last_ok, F.col("latest"))
    reason = F.when(share_ok, "share_token").when(last_ok, "last_click").otherwise("organic")
    out = scanned.select(
        "order_id", "order_event_id", "buyer_id", "share_id", F.col("ts").alias("paid_at_us"), "event_date",
        chosen.promoter_id.alias("promoter_id"),
        chosen.id.alias("click_event_id"),
        chosen.ts.alias("click_occurred_at_us"),
        reason.alias("attribution_reason"),
        F.col("candidates_considered").cast("int").alias("candidates_considered"),
    )
    if cfg.attribution.self_purchase == "deny":
        out = out.join(F.broadcast(self_buyers), "promoter_id", "left")
        is_self = F.col("promoter_buyer_id").isNotNull() & (F.col("promoter_buyer_id") == F.col("buyer_id"))
        out = (
            out.withColumn("attribution_reason", F.when(is_self, "organic").otherwise(F.col("attribution_reason")))
            .withColumn("click_event_id", F.when(is_self, None).otherwise(F.col("click_event_id")))
            .withColumn("click_occurred_at_us", F.when(is_self, None).otherwise(F.col("click_occurred_at_us")))
            .withColumn("promoter_id", F.when(is_self, None).otherwise(F.col("promoter_id")))
            .drop("promoter_buyer_id")
        )
    return out.withColumn("model", F.lit(cfg.attribution.model)).withColumn(
        "config_hash", F.lit(cfg.config_hash)
    )


def _swap_in(staging: Path, target: Path, dates: list[str]) -> None:
    """Replace target/event_date=D with the staged output for every D in the window."""
    target.mkdir(parents=True, exist_ok=True)
    for d in dates:
        new, old = staging / f"event_date={d}", target / f"event_date={d}"
        if old.exists():
            shutil.rmtree(old)
        if new.exists():
            new.rename(old)
    shutil.rmtree(staging, ignore_errors=True)


def run_click_validity(spark, cfg: Config, first: str, last: str) -> dict:
    """Compute click validity for event dates first..last; returns counts for metadata."""
    from pyspark.sql import functions as F

    landing = cfg.landing_path / "clicks"
    paths = _existing(landing, window_dates(first, last, 1, 1))
    target = cfg.warehouse_path / "clicks_validated"
    dates = window_dates(first, last)
    if not paths:
        _swap_in(target / "_none", target, dates)
        return {"clicks": 0, "invalid": 0}
    raw = spark.read.parquet(*paths).select(*CLICK_COLUMNS)
    flagged = click_validity(spark, cfg, dedupe(raw))
    out = flagged.where(F.col("event_date").between(first, last)).select(
        "event_id", "occurred_at_us", "event_date", "source", "promoter_id", "share_id", "buyer_id",
        "device_id", "sku_id", "channel", "is_valid", "invalid_reasons", "flood_count",
    )
    staging = target / f"_staging_{uuid.uuid4().hex}"
    out.repartition("event_date").write.mode("overwrite").partitionBy("event_date").parquet(str(staging))
    _swap_in(staging, target, dates)
    written = spark.read.parquet(*_existing(target, dates)) if _existing(target, dates) else None
    if written is None:
        return {"clicks": 0, "invalid": 0}
    row = written.agg(F.count("*").alias("n"), F.sum(F.when(~F.col("is_valid"), 1).otherwise(0)).alias("bad")).first()
    return {"clicks": int(row["n"]), "invalid": int(row["bad"] or 0)}


ATTRIBUTION_SCHEMA = [
    ("order_id", "string"), ("order_event_id", "string"), ("buyer_id", "string"),
    ("share_id", "string"), ("paid_at_us", "int64"), ("promoter_id", "string"),
    ("click_event_id", "string"), ("click_occurred_at_us", "int64"),
    ("attribution_reason", "string"), ("candidates_considered", "int32"),
    ("model", "string"), ("config_hash", "string"),
]


def _write_schema_file(target: Path) -> None:
    """An empty file with the output schema, so dbt can read the table before any order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = target / "_schema" / "empty.parquet"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        schema = pa.schema([(n, getattr(pa, t)()) for n, t in ATTRIBUTION_SCHEMA])
        pq.write_table(schema.empty_table(), path)


def run_attribution(spark, cfg: Config, first: str, last: str, promoters: dict) -> dict:
    from pyspark.sql import functions as F

    if cfg.attribution.model != "last_click":
        from o2p.errors import InputError

        raise InputError("attribution.model: wechat_lock is not implemented yet (issue #4); use last_click")
    target = cfg.warehouse_path / "attribution"
    _write_schema_file(target)
    dates = window_dates(first, last)
    order_paths = _existing(cfg.landing_path / "orders", dates)
    if not order_paths:
        _swap_in(target / "_none", target, dates)
        return {"orders": 0, "attributed": 0}
    orders = dedupe(spark.read.parquet(*order_paths)).where(F.col("event_type") == "order_paid")
    orders = orders.select(
        F.col("event_id").alias("order_event_id"), "order_id", "buyer_id", "share_id",
        F.col("occurred_at_us").alias("paid_at_us"), "event_date",
    )
    click_paths = _existing(cfg.warehouse_path / "clicks_validated", window_dates(first, last, cfg.attribution.lookback_days, 0))
    if click_paths:
        clicks = spark.read.parquet(*click_paths).where("is_valid").select(
            "event_id", "occurred_at_us", "buyer_id", "share_id", "promoter_id")
    else:
        clicks = spark.createDataFrame([], "event_id string, occurred_at_us long, buyer_id string, share_id string, promoter_id string")
    self_buyers = spark.createDataFrame(
        [(p.promoter_id, p.buyer_id) for p in promoters.values()] or [("", "")],
        "promoter_id string, promoter_buyer_id string",
    )
    out = last_click(spark, cfg, orders, clicks, self_buyers)
    staging = target / f"_staging_{uuid.uuid4().hex}"
    out.repartition("event_date").write.mode("overwrite").partitionBy("event_date").parquet(str(staging))
    _swap_in(staging, target, dates)
    written = spark.read.parquet(*_existing(target, dates))
    row = written.agg(F.count("*").alias("n"), F.count("promoter_id").alias("a")).first()
    return {"orders": int(row["n"]), "attributed": int(row["a"])}
