"""The landing zone (written by the capture service, not by Dagster) and the reference data.

Capture is a service (style.md §6); Dagster sees its tables as external assets partitioned by
Asia/Shanghai event date; `landing_sensor` (pipelines/automation.py) turns new landed files into
runs of the partitions they make stale (late events re-run old partitions).
"""


import pyarrow as pa
import pyarrow.parquet as pq
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetObservation,
    AssetSpec,
    DefaultSensorStatus,
    MaterializeResult,
    MetadataValue,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    multi_asset,
    sensor,
)

from o2p.reference import load_reference
from pipelines.lib.duck import POOL
from pipelines.lib.partitions import daily
from pipelines.resources import O2PConfig
from streaming.health import capture_health, log_offsets
from streaming.landing import TABLES

landing_specs = [
    AssetSpec(
        key=AssetKey(["landing", table]),
        description=f"{table} events captured from Kafka into Parquet (landing/{table}/event_date=…).",
        partitions_def=daily,
        group_name="landing",
        kinds={"kafka", "parquet"},
        metadata={"path": f"$O2P_HOME/landing/{table}"},
    )
    for table in TABLES
]

REFERENCE_KEYS = [AssetKey(["reference", n]) for n in ("promoters", "products", "commission_rules")]


@multi_asset(
    name="reference_data",
    pool=POOL,
    specs=[AssetSpec(k, group_name="landing", kinds={"python", "parquet"},
                     description=f"{k.path[-1]}.csv, validated (file, row, field) and typed for dbt.")
           for k in REFERENCE_KEYS],
)
def reference_data(context: AssetExecutionContext, o2p: O2PConfig):
    cfg = o2p.get()
    ref = load_reference(cfg.reference_path, encoding=cfg.reference_encoding)   # raises InputError naming file, row and field
    out = cfg.warehouse_path / "reference"
    out.mkdir(parents=True, exist_ok=True)
    promoters = pa.Table.from_pylist(
        [vars(p) for p in ref.promoters.values()],
        schema=pa.schema([
            ("promoter_id", pa.string()), ("upline_id", pa.string()), ("tier", pa.string()),
            ("buyer_id", pa.string()), ("payee_openid", pa.string()), ("payee_name", pa.string()),
            ("joined_at_us", pa.int64()), ("suspended_at_us", pa.int64()),
        ]),
    )
    products = pa.Table.from_pylist(
        [vars(p) for p in ref.products.values()],
        schema=pa.schema([(c, pa.string()) for c in ("sku_id", "product_id", "brand", "category")]),
    )
    rules = pa.Table.from_pylist(
        [{"rule_id": r.rule_id, "scope": r.scope, "scope_value": r.scope_value,
          "rate_e4": int(r.rate * 10000), "effective_from_us": r.effective_from_us,
          "effective_to_us": r.effective_to_us} for r in ref.rules],
        schema=pa.schema([
            ("rule_id", pa.string()), ("scope", pa.string()), ("scope_value", pa.string()),
            ("rate_e4", pa.int64()), ("effective_from_us", pa.int64()), ("effective_to_us", pa.int64()),
        ]),
    )
    for name, tbl in (("promoters", promoters), ("products", products), ("commission_rules", rules)):
        pq.write_table(tbl, out / f"{name}.parquet")
        yield MaterializeResult(asset_key=AssetKey(["reference", name]), metadata={
            "source": str(cfg.reference_path / f"{name}.csv"), "rows": tbl.num_rows,
            "path": str(out / f"{name}.parquet")})


@sensor(
    name="capture_health_sensor",
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
    description="Records capture health (lag, consumed, landed, dead letters, last flush, owner, per "
                "partition) as observations of the landing assets, so operators see it in the UI.",
)
def capture_health_sensor(context: SensorEvaluationContext, o2p: O2PConfig):
    cfg = o2p.get()
    offsets = log_offsets(cfg)
    rows = capture_health(cfg, offsets)
    if not rows:
        return SkipReason("nothing captured yet and no topic partitions found")
    kind = {getattr(cfg.kafka.topics, t): t for t in TABLES}
    return SensorResult(asset_events=[
        observation(table, [r for r in rows if kind.get(r["topic"]) == table], broker_up=offsets is not None)
        for table in TABLES
    ])


def observation(table: str, rows: list[dict], broker_up: bool) -> AssetObservation:
    lag = sum(r["lag"] for r in rows if r["lag"] is not None) if broker_up else None
    ages = [r["last_flush_age_s"] for r in rows if r["last_flush_age_s"] is not None]
    lines = ["| partition | next offset | end offset | lag | consumed | landed | dead letters | last flush | owner |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['partition']} | {r['next_offset']} | {r['end_offset']} | {r['lag']} | {r['consumed']} | "
                     f"{r['landed']} | {r['dead_lettered']} | {r['last_flush_age_s']} s ago | {r['owner'] or 'none'} |")
    meta = {
        "consumed": sum(r["consumed"] for r in rows),
        "landed": sum(r["landed"] for r in rows),
        "dead_lettered": sum(r["dead_lettered"] for r in rows),
        "partitions": MetadataValue.md("\n".join(lines)),
        "owned_partitions": sum(1 for r in rows if r["owner"]),
        "gaps": MetadataValue.json([{"partition": r["partition"], "gaps": r["gaps"]} for r in rows if r["gaps"]]),
    }
    if lag is not None:
        meta["lag"] = lag
    else:
        meta["broker"] = "not reachable: lag unknown"
    if ages:
        meta["oldest_last_flush_s"] = MetadataValue.float(float(max(ages)))
    return AssetObservation(asset_key=AssetKey(["landing", table]), metadata=meta)
