"""The landing zone (written by the capture service, not by Dagster) and the reference data.

Capture is a service (style.md §6); Dagster sees its tables as external assets partitioned by
Asia/Shanghai event date; `landing_sensor` (pipelines/automation.py) turns new landed files into
runs of the partitions they make stale (late events re-run old partitions).
"""


import pyarrow as pa
import pyarrow.parquet as pq
from dagster import (
    AssetCheckEvaluation,
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
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
    multi_asset_check,
    sensor,
)

from o2p import layout
from o2p.gates import LANDING_FRESH
from o2p.layout import TABLES
from o2p.reference import load_reference
from pipelines.lib.duck import POOL
from pipelines.lib.partitions import daily
from pipelines.lib.versions import DATA_PLATFORM, FINANCE, code_version
from pipelines.resources import O2PConfig
from streaming.deadletters import counts_by_table
from streaming.health import capture_health, log_offsets

landing_specs = [
    AssetSpec(
        key=AssetKey(["landing", table]),
        description=f"{table} events captured from Kafka into Parquet (landing/{table}/event_date=…).",
        partitions_def=daily,
        group_name="landing",
        kinds={"kafka", "parquet"},
        owners=[DATA_PLATFORM],
        tags={"domain": "capture", "cadence": "streaming"},
        metadata={"path": f"$O2P_HOME/landing/{table}"},
    )
    for table in TABLES
]

REFERENCE_KEYS = [AssetKey(["reference", n]) for n in ("promoters", "products", "commission_rules")]


@multi_asset(
    name="reference_data",
    pool=POOL,
    specs=[AssetSpec(k, group_name="landing", kinds={"python", "parquet"}, owners=[FINANCE, DATA_PLATFORM],
                     tags={"domain": "reference"}, code_version=code_version("o2p/reference.py"),
                     description=f"{k.path[-1]}.csv, validated (file, row, field) and typed for dbt.")
           for k in REFERENCE_KEYS],
)
def reference_data(context: AssetExecutionContext, o2p: O2PConfig):
    cfg = o2p.get()
    ref = load_reference(cfg.reference_path, encoding=cfg.reference_encoding)   # raises InputError naming file, row and field
    out = layout.reference_dir(cfg.warehouse_path)
    out.mkdir(parents=True, exist_ok=True)
    schemas = layout.REFERENCE_SCHEMAS
    promoters = pa.Table.from_pylist([vars(p) for p in ref.promoters.values()], schema=schemas["promoters"])
    products = pa.Table.from_pylist([vars(p) for p in ref.products.values()], schema=schemas["products"])
    rules = pa.Table.from_pylist(
        [{"rule_id": r.rule_id, "scope": r.scope, "scope_value": r.scope_value,
          "rate_e4": int(r.rate * 10000), "effective_from_us": r.effective_from_us,
          "effective_to_us": r.effective_to_us} for r in ref.rules],
        schema=schemas["commission_rules"],
    )
    for name, tbl in (("promoters", promoters), ("products", products), ("commission_rules", rules)):
        pq.write_table(tbl, layout.reference_file(cfg.warehouse_path, name))
        yield MaterializeResult(asset_key=AssetKey(["reference", name]), metadata={
            "source": str(cfg.reference_path / f"{name}.csv"), "rows": tbl.num_rows,
            "path": str(layout.reference_file(cfg.warehouse_path, name))})


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
    kind = layout.topic_tables(cfg.kafka.topics)
    dead = counts_by_table(cfg)
    events = []
    for table in TABLES:
        mine = [r for r in rows if kind.get(r["topic"]) == table]
        events.append(observation(table, mine, broker_up=offsets is not None, dead=dead.get(table)))
        events.append(freshness_evaluation(table, mine, offsets is not None, cfg.capture.stale_after_seconds))
    return SensorResult(asset_events=events)


def freshness(rows: list[dict], broker_up: bool, stale_after_s: float) -> tuple[bool, str]:
    """Fresh unless the topics have lag and nothing has landed for `stale_after_s` (pure)."""
    if not broker_up:
        return False, "the broker is not reachable: lag unknown, so freshness cannot be judged"
    lag = sum(r["lag"] or 0 for r in rows)
    ages = [r["last_flush_age_s"] for r in rows if r["last_flush_age_s"] is not None]
    newest = min(ages) if ages else None
    if lag == 0:
        return True, "no lag: everything published has landed"
    if newest is None:
        return False, f"{lag} records waiting and nothing has ever landed: is `o2p capture` running?"
    if newest > stale_after_s:
        return False, (f"{lag} records waiting and nothing landed for {newest:.0f} s "
                       f"(capture.stale_after_seconds = {stale_after_s:.0f}): is `o2p capture` running?")
    return True, f"{lag} records waiting, last landed {newest:.0f} s ago"


def freshness_evaluation(table: str, rows: list[dict], broker_up: bool, stale_after_s: float) -> AssetCheckEvaluation:
    ok, why = freshness(rows, broker_up, stale_after_s)
    return AssetCheckEvaluation(asset_key=AssetKey(["landing", table]), check_name=LANDING_FRESH, passed=ok,
                                severity=AssetCheckSeverity.WARN, description=why)


@multi_asset_check(
    specs=[AssetCheckSpec(LANDING_FRESH, asset=AssetKey(["landing", t]),
                          description="capture keeps up: fails when the topic has lag and nothing has landed for "
                                      "capture.stale_after_seconds (judged by capture_health_sensor every minute)")
           for t in TABLES],
    name="landing_freshness",
)
def landing_freshness(context: AssetCheckExecutionContext, o2p: O2PConfig):
    cfg = o2p.get()
    offsets = log_offsets(cfg)
    rows = capture_health(cfg, offsets)
    kind = layout.topic_tables(cfg.kafka.topics)
    for table in TABLES:
        ok, why = freshness([r for r in rows if kind.get(r["topic"]) == table], offsets is not None,
                            cfg.capture.stale_after_seconds)
        yield AssetCheckResult(asset_key=AssetKey(["landing", table]), check_name=LANDING_FRESH, passed=ok,
                               severity=AssetCheckSeverity.WARN, description=why)


def observation(table: str, rows: list[dict], broker_up: bool, dead: dict | None = None) -> AssetObservation:
    """`dead`: this table's landed dead letters by source and by reason code (streaming.deadletters)."""
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
    meta["dead_letters_by_source"] = MetadataValue.json((dead or {}).get("source", {}))
    meta["dead_letters_by_reason"] = MetadataValue.json((dead or {}).get("reason", {}))
    if lag is not None:
        meta["lag"] = lag
    else:
        meta["broker"] = "not reachable: lag unknown"
    if ages:
        meta["oldest_last_flush_s"] = MetadataValue.float(float(max(ages)))
    return AssetObservation(asset_key=AssetKey(["landing", table]), metadata=meta)
