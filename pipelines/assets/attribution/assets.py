"""Click validity and attribution (Spark), daily Asia/Shanghai partitions.

Both use a single-run backfill policy: a range of days is one Spark job, not one job per day.
"""

from dagster import (
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    BackfillPolicy,
    MaterializeResult,
    TimeWindowPartitionMapping,
    asset,
    multi_asset,
)

from o2p import layout
from o2p.gates import Gate
from o2p.periods import refuse_future_days
from o2p.reference import load_reference
from pipelines.assets.landing.assets import REFERENCE_KEYS
from pipelines.lib import event_ids, gates, quality
from pipelines.lib.duck import POOL
from pipelines.lib.partitions import daily, window_dates
from pipelines.lib.versions import DATA_PLATFORM, code_version
from pipelines.resources import O2PConfig, SparkResource

CLICKS_VALIDATED = AssetKey(["attribution", "clicks_validated"])
ORDER_ATTRIBUTION = AssetKey(["attribution", "order_attribution"])
ATTRIBUTION_DECISIONS = AssetKey(["attribution", "attribution_decisions"])
_ATTRIBUTION_CODE = code_version("pipelines/assets/attribution/spark_jobs.py", "pipelines/assets/attribution/lock.py")


def _lookback_days() -> int:
    """attribution.lookback_days of the config this code location loads (O2P_CONFIG): the days
    of validated clicks a day's attribution reads, as the UI's lineage shows them. A config that
    does not validate stops the code location here, naming the file and key."""
    from o2p.config import load_config

    return load_config().attribution.lookback_days


def _range(context: AssetExecutionContext) -> tuple[str, str]:
    keys = context.partition_keys
    return keys[0], keys[-1]


@asset(
    key=CLICKS_VALIDATED,
    partitions_def=daily,
    backfill_policy=BackfillPolicy.single_run(),
    deps=[AssetDep(AssetKey(["landing", "clicks"]),
                   # the ±60 s flood window reaches into the neighbouring days
                   partition_mapping=TimeWindowPartitionMapping(start_offset=-1, end_offset=1,
                                                                allow_nonexistent_upstream_partitions=True))],
    group_name="attribution",
    kinds={"spark", "parquet"},
    owners=[DATA_PLATFORM],
    tags={"domain": "attribution", "cadence": "daily"},
    code_version=code_version("pipelines/assets/attribution/spark_jobs.py", "pipelines/lib/event_ids.py"),
    pool=POOL,
    # The landing tables are written by the capture service; their gate runs here, where Dagster
    # first reads them, and blocks everything downstream of these days.
    check_specs=[
        AssetCheckSpec(Gate.LANDING.check, asset=CLICKS_VALIDATED, blocking=True,
                       description="landed events of these days: required fields, enums, sane occurred_at, "
                                   "paid_fen arithmetic, each Kafka record once, dead-letter share ≤ ceiling"),
        AssetCheckSpec(Gate.CLICK_VALIDITY.check, asset=CLICKS_VALIDATED, blocking=True,
                       description="reason vocabulary, is_valid agrees with the reasons, every landed click once"),
    ],
    description="Every click, deduplicated on event_id, flagged ua_bot and/or flood (rulebook §3).",
)
def clicks_validated(context: AssetExecutionContext, o2p: O2PConfig, spark: SparkResource) -> MaterializeResult:
    from pipelines.assets.attribution.spark_jobs import missing_validated_days, run_click_validity
    from pipelines.lib.partitions import run_ranges

    cfg = o2p.get()
    first, last = _range(context)
    refuse_future_days(cfg, first, last)   # before any work (rulebook §1)
    context.log.info(f"click validity for {first}..{last}")
    conflicts = event_ids.refresh(cfg)   # before any stage reads the landing zone (rulebook §1)
    session = spark.session(cfg)
    # the days attribution reads before this range, if never validated (a day re-run alone)
    filled = missing_validated_days(cfg, first, last)
    for a, b in run_ranges(filled, last)[0]:
        context.log.info(f"click validity of {a}..{b} too: attribution of {first} reads them and they were never validated")
        run_click_validity(session, cfg, a, b)
    stats = {**run_click_validity(session, cfg, first, last), "event_id_conflicts": conflicts,
             "lookback_days_validated": len(filled)}
    checked = gates.validate(cfg, window_dates(first, last), (Gate.LANDING, Gate.CLICK_VALIDITY))
    return MaterializeResult(
        metadata={**stats, "first_day": first, "last_day": last,
                  "path": str(layout.warehouse_table(cfg.warehouse_path, layout.CLICKS_VALIDATED))},
        check_results=[quality.to_check(checked[Gate.LANDING], check_name=Gate.LANDING.check),
                       quality.to_check(checked[Gate.CLICK_VALIDITY], check_name=Gate.CLICK_VALIDITY.check)])


_ATTRIBUTION_TAGS = {"domain": "attribution", "cadence": "daily"}


@multi_asset(
    specs=[
        AssetSpec(
            ORDER_ATTRIBUTION,
            deps=[
                AssetDep(CLICKS_VALIDATED,
                         # candidates are clicks in (t − lookback, t]
                         partition_mapping=TimeWindowPartitionMapping(start_offset=-_lookback_days(), end_offset=0,
                                                                      allow_nonexistent_upstream_partitions=True)),
                AssetKey(["landing", "orders"]),
                REFERENCE_KEYS[0],
            ],
            group_name="attribution", kinds={"spark", "parquet"}, owners=[DATA_PLATFORM], tags=_ATTRIBUTION_TAGS,
            code_version=_ATTRIBUTION_CODE,
            description="One row per order_paid event: promoter, click, reason (share_token | last_click | organic, "
                        "or lock | organic under attribution.model: wechat_lock), candidates, model, config hash.",
        ),
        AssetSpec(
            ATTRIBUTION_DECISIONS,
            # written by the same Spark job, from the same decisions (never one without the other)
            deps=[ORDER_ATTRIBUTION],
            group_name="attribution", kinds={"spark", "parquet"}, owners=[DATA_PLATFORM], tags=_ATTRIBUTION_TAGS,
            code_version=_ATTRIBUTION_CODE,
            description="The attribution decision trace: one row per (order_paid event, click of its buyer in the "
                        "lookback window, valid or not) with its promoter, validity reasons, outcome and the "
                        "rulebook reason it won or lost (README, \"Why this promoter\").",
        ),
    ],
    partitions_def=daily,
    backfill_policy=BackfillPolicy.single_run(),
    pool=POOL,
    can_subset=False,
    check_specs=[AssetCheckSpec(Gate.ATTRIBUTION.check, asset=ORDER_ATTRIBUTION, blocking=True,
                                description="one row per order; an attributed order's click exists, is valid, "
                                            "is the buyer's, is not after the order, lies in the window")],
)
def order_attribution(context: AssetExecutionContext, o2p: O2PConfig, spark: SparkResource):
    from pipelines.assets.attribution.spark_jobs import run_attribution

    cfg = o2p.get()
    first, last = _range(context)
    ref = load_reference(cfg.reference_path, encoding=cfg.reference_encoding)
    stats = run_attribution(spark.session(cfg), cfg, first, last, ref.promoters)
    checked = gates.validate(cfg, window_dates(first, last), (Gate.ATTRIBUTION,))
    days = {"first_day": first, "last_day": last, "model": cfg.attribution.model}
    trace = {k: stats.pop(k) for k in ("trace_rows", "trace_clicks")}
    yield MaterializeResult(
        asset_key=ORDER_ATTRIBUTION,
        metadata={**stats, **days, "path": str(layout.warehouse_table(cfg.warehouse_path, layout.ORDER_ATTRIBUTION))},
        check_results=[quality.to_check(checked[Gate.ATTRIBUTION], check_name=Gate.ATTRIBUTION.check)])
    yield MaterializeResult(
        asset_key=ATTRIBUTION_DECISIONS,
        metadata={**trace, **days,
                  "path": str(layout.warehouse_table(cfg.warehouse_path, layout.ATTRIBUTION_DECISIONS))})
