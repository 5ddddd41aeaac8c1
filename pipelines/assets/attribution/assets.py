"""Click validity and attribution (Spark), daily Asia/Shanghai partitions.

Both use a single-run backfill policy: a range of days is one Spark job, not one job per day.
"""


from dagster import (
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    BackfillPolicy,
    MaterializeResult,
    TimeWindowPartitionMapping,
    asset,
)

from o2p.reference import load_reference
from pipelines.assets.landing.assets import REFERENCE_KEYS
from pipelines.lib.partitions import daily
from pipelines.lib.spark import get_spark
from pipelines.resources import O2PConfig

CLICKS_VALIDATED = AssetKey(["attribution", "clicks_validated"])
ORDER_ATTRIBUTION = AssetKey(["attribution", "order_attribution"])


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
    description="Every click, deduplicated on event_id, flagged ua_bot and/or flood (rulebook §3).",
)
def clicks_validated(context: AssetExecutionContext, o2p: O2PConfig) -> MaterializeResult:
    from pipelines.assets.attribution.spark_jobs import run_click_validity

    cfg = o2p.get()
    first, last = _range(context)
    context.log.info(f"click validity for {first}..{last}")
    stats = run_click_validity(get_spark(cfg), cfg, first, last)
    return MaterializeResult(metadata={**stats, "first_day": first, "last_day": last,
                                       "path": str(cfg.warehouse_path / "clicks_validated")})


@asset(
    key=ORDER_ATTRIBUTION,
    partitions_def=daily,
    backfill_policy=BackfillPolicy.single_run(),
    deps=[
        AssetDep(CLICKS_VALIDATED,
                 # candidates are clicks in (t − 7 days, t]
                 partition_mapping=TimeWindowPartitionMapping(start_offset=-7, end_offset=0,
                                                              allow_nonexistent_upstream_partitions=True)),
        AssetKey(["landing", "orders"]),
        REFERENCE_KEYS[0],
    ],
    group_name="attribution",
    kinds={"spark", "parquet"},
    description="One row per order_paid event: promoter, click, reason (share_token | last_click | organic, "
                "or lock | organic under attribution.model: wechat_lock), candidates, model, config hash.",
)
def order_attribution(context: AssetExecutionContext, o2p: O2PConfig) -> MaterializeResult:
    from pipelines.assets.attribution.spark_jobs import run_attribution

    cfg = o2p.get()
    first, last = _range(context)
    ref = load_reference(cfg.reference_path)
    stats = run_attribution(get_spark(cfg), cfg, first, last, ref.promoters)
    return MaterializeResult(metadata={**stats, "first_day": first, "last_day": last,
                                       "model": cfg.attribution.model,
                                       "path": str(cfg.warehouse_path / "attribution")})
