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
from contextlib import contextmanager
from pathlib import Path

from o2p import decisions, layout
from o2p.config import Config
from o2p.quoting import hadoop_path
from o2p.timeutil import US_PER_DAY, US_PER_SECOND
from pipelines.lib import event_ids
from pipelines.lib.event_ids import CAPTURE_ORDER
from pipelines.lib.partitions import window_dates

CLICK_COLUMNS = [
    "event_id", "occurred_at_us", "event_date", "source", "promoter_id", "share_id", "buyer_id",
    "device_id", "sku_id", "channel", "user_agent", "_topic", "_partition", "_offset", "_captured_at_us",
]


def _existing(root: Path, dates: list[str]) -> list[str]:
    """The day folders of `dates` that exist, as paths for Spark's readers (o2p.quoting.hadoop_path)."""
    return [hadoop_path(layout.event_date_dir(root, d)) for d in dates if layout.event_date_dir(root, d).is_dir()]


def dedupe(df, losers=None, key: str = "event_id"):
    """Keep one row per event_id: the first captured (a producer retry repeats the event), after
    dropping the copies that conflict with an earlier one (`losers`: pipelines.lib.event_ids)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if losers is not None:
        df = df.join(F.broadcast(losers), on=["_topic", "_partition", "_offset"], how="left_anti")
    w = Window.partitionBy(key).orderBy(*CAPTURE_ORDER)
    return df.withColumn("_rn", F.row_number().over(w)).where("_rn = 1").drop("_rn")


def conflict_losers(spark, cfg: Config):
    """The coordinates of conflicting copies (None when there are none: no join at all)."""
    import pyarrow.parquet as pq

    path = event_ids.losers(cfg)
    if pq.read_metadata(path).num_rows == 0:
        return None
    return spark.read.parquet(hadoop_path(path)).select("_topic", "_partition", "_offset")


def click_validity(spark, cfg: Config, clicks):
    """Flag every click: `ua_bot` and/or `flood`, one row per event_id.

    Input: landed clicks, copies of one event included, conflicting copies already dropped
    (`conflict_losers`): the copies left of an event_id are the same event (every contract field
    equal, so the same device, time and output columns), and keeping any one of them is keeping
    the first captured. One shuffle by device and one sort by (device, time, event_id) serve
    both the dedupe — copies are neighbours in that order — and the ±60 s flood count."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    cv = cfg.click_validity
    pattern = "(?i)(" + "|".join(_regex_escape(p) for p in cv.bot_user_agent_patterns) + ")"
    window_us = cv.flood_window_seconds * US_PER_SECOND
    in_order = Window.partitionBy("device_id").orderBy("occurred_at_us", "event_id")
    # Clicks in [t − w, t + w] = clicks up to t + w − clicks up to t − w − 1 (times are integer
    # microseconds), each event counted once (`_first`). Frames from the partition's first row are
    # aggregated incrementally; Spark re-aggregates a sliding frame for every row, quadratic in a
    # flooding device's clicks. Their order (device, time) is a prefix of the dedupe's: no new sort.
    def clicks_up_to(offset):
        return F.sum("_first").over(
            Window.partitionBy("device_id").orderBy("occurred_at_us").rangeBetween(Window.unboundedPreceding, offset))

    flagged = (
        clicks.repartition("device_id")
        .withColumn("_first", F.when(F.lag("event_id").over(in_order) == F.col("event_id"), 0).otherwise(1))
        .withColumn("flood_count", clicks_up_to(window_us) - F.coalesce(clicks_up_to(-window_us - 1), F.lit(0)))
        .where("_first = 1").drop("_first")
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


def last_click(spark, cfg: Config, orders, clicks, self_buyers, trace: bool = False, keep=None):
    """Attribute each order (one row per order_paid event) by share token, else last click.

    orders: order_event_id, order_id, buyer_id, share_id, paid_at_us, event_date
    clicks: event_id, occurred_at_us, buyer_id, share_id, promoter_id, is_valid, invalid_reasons
        (only valid ones are candidates; the invalid ones are read by the trace alone)
    self_buyers: promoter_id, promoter_buyer_id (for self_purchase: deny)
    Returns (attribution, trace): the decision trace (`decision_trace`) when `trace`, else None.
    `keep` persists a frame both outputs read (`persisting`), so the second write reuses it.

    Two sort-based scans, no range join:
    - per buyer, clicks and orders in time order: the last click seen before an order is its
      latest candidate, and running counts give the candidates in (t − lookback, t];
    - per (buyer, share token), the same over the clicks whose token some order of that buyer
      carries (a semi-join makes this input small): the latest click with the order's token.
    Within an instant clicks sort before orders (a click at the order's instant counts) and by
    event_id *descending*, so the last one seen is the smallest event_id (byte order).
    With the trace, the same scan (one sort) also gives the trace's positions (decision_trace):
    each click's `_seq`, each order's `_upto` and clicks_in_window, so the trace needs no second
    union, sort and join back (trace_rows); with `keep`, the scan is persisted and read by both
    outputs (the orders' rows by the attribution, the clicks' by the trace).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    lookback = cfg.attribution.lookback_days * US_PER_DAY
    if not trace:
        clicks = clicks.where("is_valid")
    # Only the clicks of buyers who ordered can be candidates (most people who click do not buy):
    # a broadcast semi-join drops the rest before the shuffle.
    order_buyers = orders.select("buyer_id").distinct()
    clicks = clicks.join(F.broadcast(order_buyers), "buyer_id", "left_semi")
    valid = F.col("is_valid")
    c = clicks.select(
        "buyer_id", "share_id", F.col("occurred_at_us").alias("ts"), F.lit(0).alias("is_order"),
        F.col("event_id").alias("click_id"),
        # `click`: a candidate (valid) click; `cand`: any click, for the trace
        # (with the trace, also what the trace shows of the chosen click: no join to find it)
        F.when(valid, F.struct(F.col("occurred_at_us").alias("ts"), F.col("event_id").alias("id"),
                               F.col("promoter_id").alias("promoter_id"),
                               *([F.col("share_id").alias("share_id"), F.col("invalid_reasons").alias("invalid_reasons")]
                                 if trace else []))).alias("click"),
        F.when(valid, 1).otherwise(0).alias("is_candidate"),
        _trace_click(F.col("occurred_at_us"), F.col("event_id"), F.col("promoter_id"), F.col("share_id"),
                     valid, F.col("invalid_reasons")).alias("cand"),
        *[F.lit(None).cast(t).alias(n) for n, t in (("order_event_id", "string"), ("order_id", "string"),
                                                     ("event_date", "string"))],
    )
    o = orders.select(   # the order's own columns ride along: no join back afterwards
        "buyer_id", "share_id", F.col("paid_at_us").alias("ts"), F.lit(1).alias("is_order"),
        F.lit(None).cast("string").alias("click_id"),
        F.lit(None).cast("struct<ts:bigint,id:string,promoter_id:string"
                         + (",share_id:string,invalid_reasons:string>" if trace else ">")).alias("click"),
        F.lit(0).alias("is_candidate"), F.lit(None).cast(TRACE_CLICK_TYPE).alias("cand"),
        "order_event_id", "order_id", F.col("event_date").cast("string").alias("event_date"),
    )
    order_cols = [F.col("ts"), F.col("is_order"), F.col("click_id").desc_nulls_last()]
    upto = (Window.unboundedPreceding, Window.currentRow)
    by_buyer = Window.partitionBy("buyer_id").orderBy(*order_cols).rowsBetween(*upto)
    by_share = Window.partitionBy("buyer_id", "share_id").orderBy(*order_cols).rowsBetween(*upto)
    # Candidates in (t − lookback, t] = clicks up to t − clicks up to t − lookback. Both frames
    # start at the partition's first row, which Spark aggregates incrementally; a sliding range
    # frame (t − lookback, t] would be re-aggregated for every row: quadratic in a heavy buyer.
    def clicks_up_to(offset):
        return F.sum("is_candidate").over(
            Window.partitionBy("buyer_id").orderBy("ts").rangeBetween(Window.unboundedPreceding, offset))

    # One shuffle by buyer. The windows in time order share one sort (the range windows' order
    # is a prefix of the other's); the share-token window sorts the same partitions again.
    shuffled = c.unionByName(o).repartition("buyer_id")
    scanned = (
        shuffled
        .withColumn("latest", F.last("click", ignorenulls=True).over(by_buyer))
        .withColumn("candidates_considered", clicks_up_to(0) - F.coalesce(clicks_up_to(-lookback), F.lit(0)))
    )
    if trace:
        # The trace's positions in the same scan and sort (its order is last_click's): a click's
        # `_seq` (clicks up to it), an order's `_upto` (clicks up to it) and clicks_in_window
        # (all clicks, valid or not, in (t − lookback, t]); see decision_trace.
        def any_clicks_up_to(offset):
            return F.sum(1 - F.col("is_order")).over(
                Window.partitionBy("buyer_id").orderBy("ts").rangeBetween(Window.unboundedPreceding, offset))

        scanned = (scanned.withColumn("_seq", F.sum(1 - F.col("is_order")).over(by_buyer))
                   .withColumn("clicks_in_window", (any_clicks_up_to(0) - F.coalesce(any_clicks_up_to(-lookback),
                                                                                     F.lit(0))).cast("int")))
        # and the positions of `latest` and `latest_share` (the chosen click's rank, wherever it is)
        cand_seq = F.when(F.col("is_candidate") == 1, F.col("_seq"))
        scanned = scanned.withColumn("_latest_seq", F.last(cand_seq, ignorenulls=True).over(by_buyer))
    scanned = scanned.withColumn("latest_share", F.last("click", ignorenulls=True).over(by_share))
    if trace:
        scanned = scanned.withColumn("_share_seq", F.last(cand_seq, ignorenulls=True).over(by_share))
    if trace and keep is not None:
        # read by both outputs: the orders' rows by the attribution, the clicks' by the trace
        scanned = keep(scanned.select(
            "buyer_id", "share_id", "ts", "is_order", "order_event_id", "order_id", "event_date",
            *[F.when(F.col("is_order") == 1, F.col(n)).alias(n) for n in ("latest", "latest_share")],
            "candidates_considered", "clicks_in_window", "_seq", "_latest_seq", "_share_seq",
            F.when(F.col("is_order") == 0, F.col("cand")).alias("cand")))
    clicks_scanned = scanned.where(F.col("is_order") == 0)
    scanned = scanned.where(F.col("is_order") == 1)
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
        # what the precedence rules chose, before the self-purchase check (read by the trace)
        chosen.alias("rule_click"), reason.alias("rule_reason"),
        *([F.col("_seq").alias("_upto"), "clicks_in_window",
           F.when(share_ok, F.col("_share_seq")).when(last_ok, F.col("_latest_seq")).alias("_rule_seq")]
          if trace else []),
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
    decided = out.withColumn("model", F.lit(cfg.attribution.model)).withColumn("config_hash", F.lit(cfg.config_hash))
    if not trace:
        return decided.drop("rule_click", "rule_reason"), None
    positioned = clicks_scanned.select(F.col("buyer_id").alias("_click_buyer"), "_seq", "cand")
    attribution = decided.drop("rule_click", "rule_reason", "_upto", "clicks_in_window", "_rule_seq")
    return attribution, trace_rows(cfg, decided, positioned, rule_positioned=True)


# ---- the attribution decision trace (issue #14) ----------------------------------------------------
# One row per (order_paid event, click of its buyer in (t − lookback, t]), valid or not, saying
# whether the click won and, if not, which rule of rulebook §4 made it lose. It is not a second
# implementation of the rules: each model hands over, per order, the click its precedence chose
# (`rule_click`, before the self-purchase check) and its decision; a loser's reason is read off
# by comparing the click with that choice.
# The reason codes and what each means: o2p/decisions.py (REASONS, OUTCOMES).
TRACE_CLICK_TYPE = ("struct<ts:bigint,id:string,promoter_id:string,share_id:string,is_valid:boolean,"
                    "invalid_reasons:string>")


def _trace_click(ts, id_, promoter, share, is_valid, reasons):
    from pyspark.sql import functions as F

    return F.struct(ts.alias("ts"), id_.alias("id"), promoter.alias("promoter_id"), share.alias("share_id"),
                    is_valid.alias("is_valid"), reasons.alias("invalid_reasons"))


# Per order, the trace lists the latest TRACE_MAX_CANDIDATES clicks of the window, and the chosen
# click wherever it ranks; `clicks_in_window` counts them all. Why a cap: a heavy buyer (a bot, a
# shop assistant ordering for many) has thousands of clicks a week and hundreds of orders: all
# of them would be orders × clicks rows (13M for bench/attribution.py's 300k orders, 5,843 for one
# order, where Spark ran out of heap), and nobody reads the 21st loser of one order.
TRACE_MAX_CANDIDATES = 20


def decision_trace(cfg: Config, decided, candidates):
    """The trace of attribution `decided` (one row per order: the attribution's columns, event_date,
    rule_click struct<ts,id,promoter_id> and rule_reason) over `candidates` (buyer_id, cand: a
    click as TRACE_CLICK_TYPE; the buyer's clicks of the window's days, valid or not).

    No range join over every pair: one scan per buyer in last_click's order (time; clicks before
    orders at one instant; then event_id descending) gives each click its position `seq` and each
    order the clicks up to it (`upto`) and in its window, so a click's candidate_rank is
    upto − seq + 1 and the join keeps only the ranks ≤ TRACE_MAX_CANDIDATES (and the chosen
    click). An order without any click in its window keeps one row (`no_click_in_window`).
    Under wechat_lock the lock's click may be older than the window (locks are extended by
    orders): it gets a row of its own, candidate_rank null. last_click computes the positions in
    its own scan and calls trace_rows directly; wechat_lock (a fold in Python) comes here."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    lookback = cfg.attribution.lookback_days * US_PER_DAY
    null = F.lit(None)
    clicks = candidates.select("buyer_id", F.col("cand.ts").alias("ts"), F.lit(0).alias("is_order"),
                               F.col("cand.id").alias("click_id"), "cand", null.cast("string").alias("order_event_id"))
    orders = decided.select("buyer_id", F.col("paid_at_us").alias("ts"), F.lit(1).alias("is_order"),
                            null.cast("string").alias("click_id"), null.cast(TRACE_CLICK_TYPE).alias("cand"),
                            "order_event_id")
    in_order = Window.partitionBy("buyer_id").orderBy(F.col("ts"), F.col("is_order"), F.col("click_id").desc_nulls_last())

    def clicks_up_to(offset):
        return F.sum(1 - F.col("is_order")).over(
            Window.partitionBy("buyer_id").orderBy("ts").rangeBetween(Window.unboundedPreceding, offset))

    scanned = (clicks.unionByName(orders)
               .withColumn("seq", F.sum(1 - F.col("is_order")).over(in_order.rowsBetween(Window.unboundedPreceding,
                                                                                          Window.currentRow)))
               .withColumn("in_window", clicks_up_to(0) - F.coalesce(clicks_up_to(-lookback), F.lit(0))))
    positions = scanned.where("is_order = 1").select(
        F.col("buyer_id").alias("_ob"), F.col("order_event_id").alias("_oe"), F.col("seq").alias("_upto"),
        F.col("in_window").cast("int").alias("clicks_in_window"))
    o = decided.join(positions, (F.col("buyer_id") == F.col("_ob")) & (F.col("order_event_id") == F.col("_oe"))) \
        .drop("_ob", "_oe")
    c = scanned.where("is_order = 0").select(F.col("buyer_id").alias("_click_buyer"), F.col("seq").alias("_seq"),
                                             "cand")
    return trace_rows(cfg, o, c)


def trace_rows(cfg: Config, o, c, rule_positioned: bool = False):
    """The trace's rows from positions (decision_trace's scan, or last_click's own, which sorts in
    the same order): `o` one row per order, decision_trace's `decided` plus `_upto` and
    clicks_in_window; `c` one row per click, _click_buyer, _seq and cand. `rule_positioned`
    (last_click): `o` also has the chosen click's position `_rule_seq`, and rule_click its
    share_id and invalid_reasons (a valid click), so the chosen click needs no join."""
    from pyspark.sql import functions as F

    lookback = cfg.attribution.lookback_days * US_PER_DAY
    lock_model = cfg.attribution.model == "wechat_lock"
    # The clicks of an order's window are the positions (upto − clicks_in_window, upto] (positions
    # are in time order): its latest TRACE_MAX_CANDIDATES are named by number and read by an
    # equi-join on (buyer, position) — never every (order, click) pair of a heavy buyer, which a
    # join on the buyer alone filtered afterwards would build. An order with none keeps one row.
    listed = F.least(F.col("clicks_in_window"), F.lit(TRACE_MAX_CANDIDATES))
    wanted = o.withColumn("_want", F.explode_outer(
        F.when(listed > 0, F.sequence(F.col("_upto") - listed + 1, F.col("_upto")))))
    same_buyer = F.col("_click_buyer") == F.col("buyer_id")
    latest = wanted.join(c, same_buyer & (F.col("_seq") == F.col("_want")), "left").drop("_want")
    # and the chosen click wherever it ranks beyond them (in the window; a lock's older click: below)
    if rule_positioned:
        rule = F.col("rule_click")
        chosen = o.where(rule.isNotNull() & (F.col("_rule_seq") <= F.col("_upto") - TRACE_MAX_CANDIDATES)
                         & (rule.ts > F.col("paid_at_us") - lookback)).select(
            "*", F.col("buyer_id").alias("_click_buyer"), F.col("_rule_seq").alias("_seq"),
            _trace_click(rule.ts, rule.id, rule.promoter_id, rule.share_id, F.lit(True),
                         rule.invalid_reasons).alias("cand"))
    else:
        chosen = o.join(c, same_buyer & (F.col("cand.id") == F.col("rule_click.id"))
                        & (F.col("_seq") <= F.col("_upto") - TRACE_MAX_CANDIDATES)
                        & (F.col("cand.ts") > F.col("paid_at_us") - lookback))
    joined = latest.unionByName(chosen).withColumn(
        "candidate_rank", F.col("_upto") - F.col("_seq") + 1).drop("_click_buyer", "_seq", "_upto")
    if lock_model:
        rule_outside = F.col("rule_click").isNotNull() & (F.col("rule_click.ts") <= F.col("paid_at_us") - lookback)
        outside = o.where(rule_outside).drop("_upto").select(
            "*", _trace_click(F.col("rule_click.ts"), F.col("rule_click.id"), F.col("rule_click.promoter_id"),
                              F.lit(None).cast("string"), F.lit(True), F.lit("")).alias("cand"),
            F.lit(None).cast("long").alias("candidate_rank"))
        joined = joined.where(~(F.col("cand").isNull() & rule_outside)).unionByName(outside)

    cand, rule = F.col("cand"), F.col("rule_click")
    if lock_model:
        valid_loser = (F.when(rule.isNull(), "no_active_lock")
                       .when(cand.promoter_id != rule.promoter_id, "locked_to_other_promoter"))
    else:
        valid_loser = F.when((F.col("rule_reason") == "share_token")
                             & ~cand.share_id.eqNullSafe(F.col("share_id")), "share_token_precedence")
    valid_loser = (valid_loser.when(cand.ts == rule.ts, "tie_broken_by_event_id")
                   .otherwise("later_click_won"))
    won = cand.id.eqNullSafe(F.col("click_event_id"))
    reason = (F.when(cand.isNull(), "no_click_in_window")
              .when(~cand.is_valid, "invalid_click")
              .when(won, F.col("attribution_reason"))
              .when(cand.id == rule.id, "self_purchase")
              .otherwise(valid_loser))
    outcome = F.when(cand.isNull(), "none").when(won, "won").otherwise("lost")
    return joined.select(
        "order_id", "order_event_id", "buyer_id", F.col("share_id").alias("order_share_id"), "paid_at_us",
        "attribution_reason", F.col("promoter_id").alias("attributed_promoter_id"),
        F.when(cand.isNotNull(), F.col("candidate_rank")).cast("int").alias("candidate_rank"),
        "clicks_in_window",
        cand.id.alias("click_event_id"), cand.ts.alias("click_occurred_at_us"), cand.promoter_id.alias("promoter_id"),
        cand.share_id.alias("click_share_id"), cand.is_valid.alias("is_valid"),
        cand.invalid_reasons.alias("invalid_reasons"),
        outcome.alias("outcome"), reason.alias("reason"), "model", "config_hash", "event_date",
    )


LOCK_EVENT_SCHEMA = ("buyer_id string, rank int, ts long, id string, promoter_id string, order_id string, "
                     "share_id string, event_date string, click_ts long, bound_at long, expires_at long")
LOCK_OUT_SCHEMA = ("rtype string, buyer_id string, id string, order_id string, share_id string, ts long, "
                   "event_date string, promoter_id string, click_event_id string, click_occurred_at_us long, "
                   "attribution_reason string, candidates_considered int, bound_at long, expires_at long, "
                   "lock_promoter_id string, lock_click_id string, lock_click_ts long")
LOCK_STATE_COLUMNS = ["buyer_id", "promoter_id", "click_event_id", "click_occurred_at_us", "bound_at_us", "expires_at_us"]


def wechat_lock(spark, cfg: Config, orders, clicks, past_clicks, state, own_buyer: dict, dates: list[str],
                trace_clicks=None):
    """The lock model over days `dates` (see lock.py): returns (attribution, end-of-day lock
    states, decision trace — None unless `trace_clicks` is given).

    orders: order_event_id, order_id, buyer_id, share_id, paid_at_us, event_date (days of the run)
    clicks: valid clicks of the run's days; past_clicks: valid clicks of the lookback before it;
    state: the lock snapshot at the end of the day before the run (LOCK_STATE_COLUMNS);
    trace_clicks: every click (valid or not, with invalid_reasons) of the lookback and the run.
    One shuffle by buyer, then a fold per buyer in Python (the lock is a sequential state machine).
    """
    from pyspark.sql import functions as F

    from o2p.timeutil import US_PER_DAY as DAY
    from o2p.timeutil import day_end_us
    from pipelines.assets.attribution import lock

    a = cfg.attribution
    lock_us, ext_us, lookback_us = a.lock_days * DAY, a.lock_order_extension_days * DAY, a.lookback_days * DAY
    deny = a.self_purchase == "deny"
    day_ends = [(d, day_end_us(d)) for d in dates]
    null = F.lit(None)

    def ev(df, rank, ts, id_, promoter, order_id=null, share=null, day=null, click_ts=null, bound=null, exp=null):
        return df.select(F.col("buyer_id"), F.lit(rank).alias("rank"), F.col(ts).alias("ts"), F.col(id_).alias("id"),
                         promoter.alias("promoter_id"), order_id.cast("string").alias("order_id"),
                         share.cast("string").alias("share_id"), day.cast("string").alias("event_date"),
                         click_ts.cast("long").alias("click_ts"), bound.cast("long").alias("bound_at"),
                         exp.cast("long").alias("expires_at"))

    events = (
        ev(state, lock.STATE, "bound_at_us", "click_event_id", F.col("promoter_id"),
           click_ts=F.col("click_occurred_at_us"), bound=F.col("bound_at_us"), exp=F.col("expires_at_us"))
        .unionByName(ev(clicks, lock.CLICK, "occurred_at_us", "event_id", F.col("promoter_id")))
        .unionByName(ev(past_clicks, lock.PAST_CLICK, "occurred_at_us", "event_id", null.cast("string")))
        .unionByName(ev(orders, lock.ORDER, "paid_at_us", "order_event_id", null.cast("string"),
                        order_id=F.col("order_id"), share=F.col("share_id"), day=F.col("event_date")))
    )

    def fold(pdf):
        import pandas as pd

        rows = pdf.to_dict("records")
        for r in rows:
            if r["rank"] == lock.STATE:
                r["ts"] = -(2**62)
        by_id = {r["id"]: r for r in rows if r["rank"] == lock.ORDER}
        buyer = rows[0]["buyer_id"]
        got, states = lock.scan(rows, day_ends, lock_us, ext_us, lookback_us, own_buyer, deny)
        out = []
        for oid, promoter, click_id, click_ts, reason, cands, held in got:
            o = by_id[oid]
            out.append(("order", buyer, oid, o["order_id"], o["share_id"], o["ts"], o["event_date"], promoter,
                        click_id, click_ts, reason, cands, None, None, *(held or (None, None, None))))
        for day, promoter, click_id, click_ts, bound_at, expires in states:
            out.append(("state", buyer, None, None, None, None, day, promoter, click_id, click_ts, None, None,
                        bound_at, expires, None, None, None))
        cols = [c.split()[0] for c in LOCK_OUT_SCHEMA.split(", ")]
        return pd.DataFrame(out, columns=cols)

    folded = events.groupBy("buyer_id").applyInPandas(fold, schema=LOCK_OUT_SCHEMA).cache()
    decided = folded.where("rtype = 'order'").select(
        F.col("order_id"), F.col("id").alias("order_event_id"), "buyer_id", "share_id",
        F.col("ts").alias("paid_at_us"), "event_date", "promoter_id", "click_event_id", "click_occurred_at_us",
        "attribution_reason", "candidates_considered",
        # the lock active at the order, before the self-purchase check (read by the trace)
        F.when(F.col("lock_click_id").isNotNull(), F.struct(
            F.col("lock_click_ts").alias("ts"), F.col("lock_click_id").alias("id"),
            F.col("lock_promoter_id").alias("promoter_id"))).alias("rule_click"),
        F.when(F.col("lock_click_id").isNotNull(), "lock").otherwise("organic").alias("rule_reason"),
    ).withColumn("model", F.lit(a.model)).withColumn("config_hash", F.lit(cfg.config_hash))
    states = folded.where("rtype = 'state'").select(
        "buyer_id", "promoter_id", "click_event_id", "click_occurred_at_us",
        F.col("bound_at").alias("bound_at_us"), F.col("expires_at").alias("expires_at_us"), "event_date")
    trace = None
    if trace_clicks is not None:
        buyers = orders.select("buyer_id").distinct()
        candidates = trace_clicks.join(F.broadcast(buyers), "buyer_id", "left_semi").select(
            "buyer_id", _trace_click(F.col("occurred_at_us"), F.col("event_id"), F.col("promoter_id"),
                                     F.col("share_id"), F.col("is_valid"), F.col("invalid_reasons")).alias("cand"))
        trace = decision_trace(cfg, decided, candidates)
    return decided.drop("rule_click", "rule_reason"), states, trace


def _swap_in(staging: Path, target: Path, dates: list[str]) -> None:
    """Replace target/event_date=D with the staged output for every D in the window."""
    target.mkdir(parents=True, exist_ok=True)
    for d in dates:
        new, old = layout.event_date_dir(staging, d), layout.event_date_dir(target, d)
        if old.exists():
            shutil.rmtree(old)
        if new.exists():
            new.rename(old)
    shutil.rmtree(staging, ignore_errors=True)


def run_click_validity(spark, cfg: Config, first: str, last: str) -> dict:
    """Compute click validity for event dates first..last; returns counts for metadata."""
    from pyspark.sql import functions as F

    landing = layout.landing_table(cfg.landing_path, "clicks")
    paths = _existing(landing, window_dates(first, last, 1, 1))
    target = layout.warehouse_table(cfg.warehouse_path, layout.CLICKS_VALIDATED)
    dates = window_dates(first, last)
    if not paths:
        _swap_in(target / "_none", target, dates)
        return {"clicks": 0, "invalid": 0}
    raw = spark.read.parquet(*paths).select(*CLICK_COLUMNS)
    losers = conflict_losers(spark, cfg)
    if losers is not None:
        raw = raw.join(F.broadcast(losers), on=["_topic", "_partition", "_offset"], how="left_anti")
    out = click_validity(spark, cfg, raw).where(F.col("event_date").between(first, last)).select(
        "event_id", "occurred_at_us", "event_date", "source", "promoter_id", "share_id", "buyer_id",
        "device_id", "sku_id", "channel", "is_valid", "invalid_reasons", "flood_count",
    )
    staging = target / f"_staging_{uuid.uuid4().hex}"
    # no shuffle by day before writing: each task writes its rows of every day (the writer sorts
    # them by day locally), a few files per day instead of a third pass over the network
    out.write.mode("overwrite").partitionBy("event_date").parquet(str(staging))
    _swap_in(staging, target, dates)
    return _counts(target, dates, "count(*) filter (where not is_valid)", ("clicks", "invalid"))


def missing_validated_days(cfg: Config, first: str, last: str) -> list[str]:
    """The days before `first` that attribution of first..last reads (its lookback; under
    `wechat_lock`, every landed day before it) whose clicks landed but were never validated.

    Click validity of a day is a pure function of the landed clicks of that day and its
    neighbours, so validating them here writes what a run of those days writes: a single day
    re-run alone, in any order, reads the same candidates (issue #17)."""
    from o2p.layout import landed_dates

    landed = set(landed_dates(cfg.landing_path, "clicks"))
    if cfg.attribution.model == "wechat_lock":
        before = [d for d in landed if d < first]
    else:
        before = window_dates(first, first, cfg.attribution.lookback_days, 0)[:-1]
    target = layout.warehouse_table(cfg.warehouse_path, layout.CLICKS_VALIDATED)
    return sorted(d for d in before if d in landed and not layout.event_date_dir(target, d).is_dir())


ATTRIBUTION_SCHEMA = [
    ("order_id", "string"), ("order_event_id", "string"), ("buyer_id", "string"),
    ("share_id", "string"), ("paid_at_us", "int64"), ("promoter_id", "string"),
    ("click_event_id", "string"), ("click_occurred_at_us", "int64"),
    ("attribution_reason", "string"), ("candidates_considered", "int32"),
    ("model", "string"), ("config_hash", "string"),
]

def _write_schema_file(target: Path, columns=ATTRIBUTION_SCHEMA) -> None:
    """An empty file with the output schema, so dbt can read the table before any order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = layout.schema_file(target)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        schema = pa.schema([(n, getattr(pa, t)()) for n, t in columns])
        pq.write_table(schema.empty_table(), path)


def _earliest_landed(cfg: Config) -> str | None:
    from o2p.layout import landed_dates

    days = landed_dates(cfg.landing_path, "clicks") + landed_dates(cfg.landing_path, "orders")
    return min(days) if days else None


@contextmanager
def persisting():
    """`keep(df)` persists df (memory, spilling to disk) until the block ends: a frame two writes
    read is computed once."""
    kept = []

    def keep(df):
        kept.append(df.persist())
        return kept[-1]
    try:
        yield keep
    finally:
        for df in kept:
            df.unpersist()


def run_attribution(spark, cfg: Config, first: str, last: str, promoters: dict, trace: bool | None = None) -> dict:
    """Attribution of the orders of days first..last, and its decision trace beside it unless
    `trace` (default: attribution.decision_trace) is false — then the trace of these days is
    removed, as it would no longer be this attribution's; returns counts for metadata."""
    if trace is None:
        trace = cfg.attribution.decision_trace
    from pyspark.sql import functions as F

    lock_model = cfg.attribution.model == "wechat_lock"
    target = layout.warehouse_table(cfg.warehouse_path, layout.ORDER_ATTRIBUTION)
    trace_root = layout.warehouse_table(cfg.warehouse_path, layout.ATTRIBUTION_DECISIONS)
    state_root = layout.warehouse_table(cfg.warehouse_path, layout.LOCK_STATE)
    _write_schema_file(target)
    _write_schema_file(trace_root, decisions.SCHEMA)
    if lock_model:
        # the fold needs the locks at the end of the day before: without that snapshot, start
        # from the first landed day (slower, and as correct)
        prev = window_dates(first, first, 1, 0)[0]
        earliest = _earliest_landed(cfg)
        if earliest and earliest < first and not layout.event_date_dir(state_root, prev).is_dir():
            first = earliest
    dates = window_dates(first, last)
    order_paths = _existing(layout.landing_table(cfg.landing_path, "orders"), dates)
    if order_paths:
        orders = dedupe(spark.read.parquet(*order_paths), conflict_losers(spark, cfg)).where(
            F.col("event_type") == "order_paid")
    else:
        orders = spark.createDataFrame([], "event_id string, order_id string, buyer_id string, share_id string, "
                                           "occurred_at_us long, event_date string")
    orders = orders.select(
        F.col("event_id").alias("order_event_id"), "order_id", "buyer_id", "share_id",
        F.col("occurred_at_us").alias("paid_at_us"), F.col("event_date").cast("string").alias("event_date"),
    )
    click_schema = ("event_id string, occurred_at_us long, buyer_id string, share_id string, promoter_id string, "
                    "is_valid boolean, invalid_reasons string")

    def validated_clicks(days):
        """Every click of `days` as click validity flagged it (valid or not)."""
        paths = _existing(layout.warehouse_table(cfg.warehouse_path, layout.CLICKS_VALIDATED), days)
        if not paths:
            return spark.createDataFrame([], click_schema)
        return spark.read.parquet(*paths).select(
            "event_id", "occurred_at_us", "buyer_id", "share_id", "promoter_id", "is_valid", "invalid_reasons")

    def valid_clicks(days):
        return validated_clicks(days).where("is_valid").drop("is_valid", "invalid_reasons")

    staging = target / f"_staging_{uuid.uuid4().hex}"
    trace_staging = trace_root / f"_staging_{uuid.uuid4().hex}"
    lookback = cfg.attribution.lookback_days
    with persisting() as keep:
        if lock_model:
            past_days = window_dates(first, first, lookback, 0)[:-1]
            prev_state = _existing(state_root, past_days[-1:])
            state = (spark.read.parquet(*prev_state).select(*LOCK_STATE_COLUMNS) if prev_state else
                     spark.createDataFrame([], "buyer_id string, promoter_id string, click_event_id string, "
                                               "click_occurred_at_us long, bound_at_us long, expires_at_us long"))
            own = {p.promoter_id: p.buyer_id for p in promoters.values()}
            out, states, trace_df = wechat_lock(
                spark, cfg, orders, valid_clicks(dates), valid_clicks(past_days), state, own, dates,
                trace_clicks=validated_clicks(window_dates(first, last, lookback, 0)) if trace else None)
            state_staging = state_root / f"_staging_{uuid.uuid4().hex}"
            states.repartition("event_date").write.mode("overwrite").partitionBy("event_date").parquet(str(state_staging))
            _swap_in(state_staging, state_root, dates)
        else:
            self_buyers = spark.createDataFrame(
                [(p.promoter_id, p.buyer_id) for p in promoters.values()] or [("", "")],
                "promoter_id string, promoter_buyer_id string",
            )
            out, trace_df = last_click(spark, cfg, orders, validated_clicks(window_dates(first, last, lookback, 0)),
                                        self_buyers, trace=trace, keep=keep)
        out.repartition("event_date").write.mode("overwrite").partitionBy("event_date").parquet(str(staging))
        if trace_df is not None:
            # no shuffle by day: each task writes its rows of every day (as click validity does)
            trace_df.write.mode("overwrite").partitionBy("event_date").parquet(str(trace_staging))
    _swap_in(staging, target, dates)
    counts = _counts(target, dates, "count(promoter_id)", ("orders", "attributed"))
    _swap_in(trace_staging, trace_root, dates)   # without a trace: these days' old trace removed
    counts.update(_counts(trace_root, dates, "count(click_event_id)", ("trace_rows", "trace_clicks")))
    return counts


def _counts(target: Path, dates: list[str], second: str, names: tuple[str, str]) -> dict:
    """Rows written for `dates` and one more count over them, by DuckDB (no Spark job)."""
    import duckdb

    from o2p.quoting import file_list

    files = [f for d in dates for f in sorted(layout.event_date_dir(target, d).glob("*.parquet"))]
    if not files:
        return {names[0]: 0, names[1]: 0}
    with duckdb.connect() as con:
        n, m = con.execute(f"select count(*), {second} from read_parquet({file_list(files)})").fetchone()
    return {names[0]: int(n), names[1]: int(m or 0)}
