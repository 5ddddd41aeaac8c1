"""The landing zone (written by the capture service, not by Dagster) and the reference data.

Capture is a service (style.md §6); Dagster sees its tables as external assets partitioned by
Asia/Shanghai event date, and a sensor turns new landed files into runs of the partitions they
belong to (late events re-run old partitions).
"""


import pyarrow as pa
import pyarrow.parquet as pq
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    AssetObservation,
    AssetSpec,
    DefaultSensorStatus,
    MaterializeResult,
    MetadataValue,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    multi_asset,
    sensor,
)

from o2p.reference import load_reference
from pipelines.lib.partitions import START, affected_range, daily
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
    name="landing_sensor",
    minimum_interval_seconds=30,
    description="Requests one attribution run over every daily partition that newly landed click "
                "and order files make stale (late clicks re-run the days whose orders they can win).",
    target=[AssetKey(["attribution", "clicks_validated"]), AssetKey(["attribution", "order_attribution"])],
)
def landing_sensor(context: SensorEvaluationContext, o2p: O2PConfig):
    cfg = o2p.get()
    cursor = int(context.cursor or 0)
    newest = cursor
    new: dict[str, set[str]] = {table: set() for table in TABLES}
    for table in new:
        root = cfg.landing_path / table
        if not root.is_dir():
            continue
        for part in root.glob("event_date=*"):
            for f in part.glob("*.parquet"):
                m = f.stat().st_mtime_ns
                if m > cursor:
                    new[table].add(part.name.split("=", 1)[1])
                    newest = max(newest, m)
    last_key = daily.get_last_partition_key()
    # the landing assets' partition status: a day with new files is a day landed (by capture)
    landed = [AssetMaterialization(AssetKey(["landing", table]), partition=day,
                                   metadata={"path": str(cfg.landing_path / table / f"event_date={day}"),
                                             "files": len(list((cfg.landing_path / table / f"event_date={day}").glob("*.parquet")))})
              for table, days in new.items() for day in sorted(days) if START <= day <= last_key]
    rng = affected_range(new["clicks"], new["orders"], cfg.attribution.lookback_days,
                         cfg.attribution.model, last_key)
    if newest > cursor:
        context.update_cursor(str(newest))
    if rng is None:
        return SensorResult(asset_events=landed, skip_reason=None if landed else "no new landed files")
    start, end = rng
    return SensorResult(asset_events=landed, run_requests=[RunRequest(
        run_key=f"{start}..{end}:{newest}",
        tags={"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end})])


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
