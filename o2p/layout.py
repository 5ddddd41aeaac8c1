"""Where every stage's data lives: the one home of the storage layout (issue #13).

Every stage — capture, Spark, dbt, settlement, the gates, the release, the CLI — finds its
folders, files, tables and Arrow schemas here; nothing else spells a path under `$O2P_HOME`.
Path functions are pure (a home in, a `Path` out); the few readers below only list folders.
Nothing runs at import, and nothing here imports Kafka, Spark, Dagster or dbt.

    $O2P_HOME/
      landing/<table>/event_date=YYYY-MM-DD/<topic>+<partition>+<first>+<last>.parquet
      landing/deadletters/capture_date=YYYY-MM-DD/<topic>+<partition>+<first>+<last>.parquet
      landing/_state/<topic>+<partition>.json     the commit point of each partition (and .lock)
      deadletters/replays.jsonl                   who replayed which fixed dead letter, when
      landing/_tmp/                               files written but not yet committed
      landing/<table>/_schema/empty.parquet       each table's schema, for readers of an empty zone
      warehouse/o2p.duckdb                        dbt's marts, settlement's tables (one writer)
      warehouse/clicks_validated/event_date=D/    Spark: asset attribution/clicks_validated
      warehouse/attribution/event_date=D/         Spark: asset attribution/order_attribution
      warehouse/attribution_decisions/event_date=D/  Spark: its decision trace (asset attribution/attribution_decisions)
      warehouse/lock_state/event_date=D/          Spark: wechat_lock's active locks at the end of D
      warehouse/event_id_conflicts/current/conflicts.parquet   copies of an event_id read by no stage
      warehouse/reference/<name>.parquet          the reference CSVs, validated and typed
      quality/days/<day>/<suite>.json             a day's gate result with its files' fingerprint
      quality/<period>/<run_id>/<suite>.json      the gate results of one run
      quality/capture_counts.json                 landed events per file and capture date (a cache)
      gx/uncommitted/data_docs/local_site/        Great Expectations' Data Docs
      payouts/<period>/<batch_id>/                one released batch
      bi/o2p_bi.duckdb                            the BI copy of the marts, swapped in whole (readers' file)
      reports/<period>.html                       `o2p report`: the period on one self-contained page
      docs/index.html                             `o2p docs`: dbt's docs of the models, one static page

`event_date` is the Asia/Shanghai date of `occurred_at`, so a late event lands in the (old)
partition it belongs to, and that partition's assets re-run.

`python -m o2p.layout --sources` writes dbt's `_<source>__sources.yml` files from `SOURCES`
(a unit test fails when a committed one differs from what this module generates).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow as pa

# ---- landing (written by the capture service, read by Spark, dbt and the gates) ------------------
LANDING = "landing"
META = [
    ("_topic", pa.string()),
    ("_partition", pa.int32()),
    ("_offset", pa.int64()),
    ("_captured_at_us", pa.int64()),
]
COMMON = [
    ("event_id", pa.string()),
    ("event_type", pa.string()),
    ("occurred_at", pa.string()),
    ("occurred_at_us", pa.int64()),
    ("event_date", pa.string()),
    ("source", pa.string()),
    ("schema_version", pa.int32()),
]
LINE = pa.struct([
    ("line_id", pa.string()),
    ("sku_id", pa.string()),
    ("quantity", pa.int64()),
    ("unit_price_fen", pa.int64()),
    ("discount_fen", pa.int64()),
    ("paid_fen", pa.int64()),
])
SCHEMAS = {
    "clicks": pa.schema(COMMON + [
        ("promoter_id", pa.string()),
        ("share_id", pa.string()),
        ("buyer_id", pa.string()),
        ("device_id", pa.string()),
        ("sku_id", pa.string()),
        ("channel", pa.string()),
        ("user_agent", pa.string()),
        ("ip_hash", pa.string()),
    ] + META),
    "orders": pa.schema(COMMON + [
        ("order_id", pa.string()),
        ("buyer_id", pa.string()),
        ("share_id", pa.string()),
        ("currency", pa.string()),
        ("lines", pa.list_(LINE)),
    ] + META),
    "refunds": pa.schema(COMMON + [
        ("refund_id", pa.string()),
        ("order_id", pa.string()),
        ("line_id", pa.string()),
        ("amount_fen", pa.int64()),
    ] + META),
    "deadletters": pa.schema(META + [
        ("capture_date", pa.string()),
        ("key", pa.binary()),
        ("raw", pa.binary()),
        ("reason", pa.string()),
    ]),
}
TABLES = ("clicks", "orders", "refunds")   # the event tables; "deadletters" is not one
DEADLETTERS = "deadletters"


def topic_tables(topics) -> dict[str, str]:
    """topic → landing table: each event table is named as its topic's key in `kafka.topics`
    (config), so `o2p.orders.v1` (or whatever the config names) lands in `orders`."""
    return {getattr(topics, t): t for t in TABLES}


def landing_root(home: Path) -> Path:
    return Path(home) / LANDING


def landing_table(landing: Path, table: str) -> Path:
    return Path(landing) / table


def event_date_dir(root: Path, day: str) -> Path:
    """A hive-style day partition of a landing table or a Spark output."""
    return Path(root) / f"event_date={day}"


def capture_date_dir(landing: Path, day: str) -> Path:
    return Path(landing) / DEADLETTERS / f"capture_date={day}"


def deadletter_files(landing: Path, day: str | None = None) -> list[Path]:
    """The landed dead-letter files, of one capture date or of all, in order."""
    root = Path(landing) / DEADLETTERS
    pattern = f"capture_date={day}/*.parquet" if day else "capture_date=*/*.parquet"
    return sorted(root.glob(pattern)) if root.is_dir() else []


def deadletter_replays_file(home: Path) -> Path:
    """Every replay of a fixed dead letter (`o2p deadletters replay`): who, when, what; JSON lines."""
    return Path(home) / "deadletters" / "replays.jsonl"


def state_dir(landing: Path) -> Path:
    return Path(landing) / "_state"


def state_file(landing: Path, topic: str, partition: int) -> Path:
    """The commit point of a partition: the offsets landed and the files that hold them."""
    return state_dir(landing) / f"{topic}+{partition}.json"


def state_lock(landing: Path, topic: str, partition: int) -> Path:
    return state_dir(landing) / f"{topic}+{partition}.lock"


def tmp_dir(landing: Path) -> Path:
    return Path(landing) / "_tmp"


def schema_file(table_root: Path) -> Path:
    """An empty Parquet file with a table's schema, so globbing readers work before any row."""
    return Path(table_root) / "_schema" / "empty.parquet"


def file_name(topic: str, partition: int, first: int, last: int) -> str:
    return f"{topic}+{partition}+{first:020d}+{last:020d}.parquet"


def landed_dates(landing: Path, table: str) -> list[str]:
    root = landing_table(landing, table)
    if not root.is_dir():
        return []
    return sorted(
        p.name.split("=", 1)[1] for p in root.iterdir()
        if p.is_dir() and p.name.startswith("event_date=") and any(p.glob("*.parquet"))
    )


def landed_days(landing: Path) -> list[str]:
    """Every event date with landed files in any event table, in order."""
    return sorted({d for t in TABLES for d in landed_dates(landing, t)})


def read_states(landing: Path) -> list[dict]:
    root = state_dir(landing)
    if not root.is_dir():
        return []
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(root.glob("*.json"))]


def ensure_schema_files(landing: Path) -> None:
    """An empty Parquet file with each table's schema under <table>/_schema/, so readers that
    glob the landing zone (dbt) work before the first event of a kind has arrived."""
    import pyarrow.parquet as pq

    for table in (*TABLES, DEADLETTERS):
        path = schema_file(landing_table(landing, table))
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(SCHEMAS[table].empty_table(), path)


# ---- warehouse (Spark's Parquet outputs, the reference data, the DuckDB file) -------------------
WAREHOUSE = "warehouse"
CLICKS_VALIDATED = "clicks_validated"   # asset attribution/clicks_validated
# asset attribution/order_attribution, dbt source warehouse.order_attribution; the folder keeps its
# first name ("attribution") so warehouses written before stay readable
ORDER_ATTRIBUTION = "attribution"
# asset attribution/attribution_decisions (written with order_attribution), dbt source
# attribution.decisions: the decision trace, one row per (order_paid event, click in its window)
ATTRIBUTION_DECISIONS = "attribution_decisions"
LOCK_STATE = "lock_state"
EVENT_ID_CONFLICTS = "event_id_conflicts"
REFERENCE = "reference"
REFERENCE_SCHEMAS = {   # written by the reference asset, read by dbt's reference source
    "promoters": pa.schema([
        ("promoter_id", pa.string()), ("upline_id", pa.string()), ("tier", pa.string()),
        ("buyer_id", pa.string()), ("payee_openid", pa.string()), ("payee_name", pa.string()),
        ("joined_at_us", pa.int64()), ("suspended_at_us", pa.int64()),
    ]),
    "products": pa.schema([(c, pa.string()) for c in ("sku_id", "product_id", "brand", "category")]),
    "commission_rules": pa.schema([
        ("rule_id", pa.string()), ("scope", pa.string()), ("scope_value", pa.string()),
        ("rate_e4", pa.int64()), ("effective_from_us", pa.int64()), ("effective_to_us", pa.int64()),
    ]),
}
REFERENCE_TABLES = tuple(REFERENCE_SCHEMAS)
DUCKDB_FILE = "o2p.duckdb"

# DuckDB schemas and tables (dbt writes staging/intermediate/marts; Python writes settlement)
ENTITLEMENTS = "marts.fct_commission_entitlements"
ESTIMATED_VS_SETTLED = "marts.fct_commission_estimated_vs_settled"
ORDERS_FACT = "marts.fct_orders"
PROMOTER_DAILY = "marts.fct_promoter_daily"
ANOMALIES = "marts.fct_anomalies"
PROMOTER_BALANCES = "settlement.promoter_balances"
STATEMENT_LINES = "settlement.statement_lines"
RETURNED_TRANSFERS = "settlement.returned_transfers"
LEDGER_MIRROR = "settlement.ledger_mirror"
# the registry's balances of released periods, copied by the BI refresh (o2p/bi.py) for the
# estimated-vs-settled mart (dbt source settlement.released_balances)
RELEASED_BALANCES = "settlement.released_balances"


def warehouse_root(home: Path) -> Path:
    return Path(home) / WAREHOUSE


def duckdb_file(home: Path) -> Path:
    return warehouse_root(home) / DUCKDB_FILE


def warehouse_table(warehouse: Path, name: str) -> Path:
    """A day-partitioned Parquet folder of the warehouse (CLICKS_VALIDATED, ORDER_ATTRIBUTION …)."""
    return Path(warehouse) / name


def conflicts_file(warehouse: Path) -> Path:
    return Path(warehouse) / EVENT_ID_CONFLICTS / "current" / "conflicts.parquet"


def reference_dir(warehouse: Path) -> Path:
    return Path(warehouse) / REFERENCE


def reference_file(warehouse: Path, name: str) -> Path:
    """The validated reference table `name` (promoters, products, commission_rules)."""
    return reference_dir(warehouse) / f"{name}.parquet"


# ---- quality (gate results, Great Expectations) ---------------------------------------------------
def quality_root(home: Path) -> Path:
    return Path(home) / "quality"


def day_result_file(home: Path, day: str, suite: str) -> Path:
    return quality_root(home) / "days" / day / f"{suite}.json"


def run_results_dir(home: Path, period: str, run_id: str) -> Path:
    return quality_root(home) / period / run_id


def capture_counts_file(home: Path) -> Path:
    return quality_root(home) / "capture_counts.json"


def gx_root(home: Path) -> Path:
    return Path(home) / "gx"


def data_docs_index(home: Path) -> Path:
    return gx_root(home) / "uncommitted" / "data_docs" / "local_site" / "index.html"


# ---- payouts --------------------------------------------------------------------------------------
def payouts_root(home: Path) -> Path:
    return Path(home) / "payouts"


def batch_folder(payouts: Path, period: str, batch_id: str) -> Path:
    return Path(payouts) / period / batch_id


# ---- BI (the serving copy analysts' tools hold open; never the pipeline's file) -------------------
BI = "bi"
BI_DUCKDB_FILE = "o2p_bi.duckdb"
BI_SCHEMAS = ("marts",)   # what the copy holds: every table of these schemas of the warehouse


def bi_root(home: Path) -> Path:
    return Path(home) / BI


def bi_duckdb_file(home: Path) -> Path:
    return bi_root(home) / BI_DUCKDB_FILE


# ---- pages for people: the monthly report, the models' docs ----------------------------------------
def report_file(home: Path, period: str) -> Path:
    return Path(home) / "reports" / f"{period}.html"


def docs_root(home: Path) -> Path:
    return Path(home) / "docs"


# ---- dbt sources (generated into dbt_project/models/staging/<source>/_<source>__sources.yml) ------
DBT_PROJECT = Path(__file__).resolve().parents[1] / "dbt_project"

# Per source: the dbt var holding the quoted glob (set by pipelines/assets/commission.dbt_vars from
# the folders above), its description, and per table its Dagster asset key, description, the folder
# it reads (`identifier`), its column tests and a loaded-at column for source freshness.
_LANDED_AT = "make_timestamp(_captured_at_us)"
SOURCES: dict[str, dict] = {
    LANDING: {
        "description": "Events captured from Kafka by the capture service (Parquet, one folder per "
                       "Asia/Shanghai event date; every copy a producer sent, as landed).",
        "glob_var": "landing_glob",
        "tables": {
            "orders": {
                "asset_key": [LANDING, "orders"],
                "description": "order_paid, order_confirmed and order_cancelled events (o2p.orders.v1).",
                "loaded_at_field": _LANDED_AT,
                "columns": {
                    "event_id": ["not_null"],
                    "order_id": ["not_null"],
                    "occurred_at_us": ["not_null"],
                },
            },
            "refunds": {
                "asset_key": [LANDING, "refunds"],
                "description": "Refund events (o2p.refunds.v1).",
                "loaded_at_field": _LANDED_AT,
                "columns": {
                    "event_id": ["not_null"],
                    "refund_id": ["not_null"],
                    "order_id": ["not_null"],
                    "occurred_at_us": ["not_null"],
                },
            },
        },
    },
    WAREHOUSE: {
        "description": "Outputs of the Spark and Python assets.",
        "glob_var": "warehouse_glob",
        "tables": {
            "order_attribution": {
                "identifier": ORDER_ATTRIBUTION,
                "asset_key": ["attribution", "order_attribution"],
                "description": "Spark's attribution: one row per landed order_paid event.",
                "columns": {"order_id": ["not_null"], "attribution_reason": ["not_null"]},
            },
            "clicks_validated": {
                "identifier": CLICKS_VALIDATED,
                "asset_key": ["attribution", "clicks_validated"],
                "description": "Spark's click validity (rulebook §3): every deduplicated click with is_valid and its "
                               "invalid_reasons (ua_bot, flood). Read only by an ephemeral staging model, "
                               "aggregated into tables: no per-click table in DuckDB.",
                "columns": {"event_id": ["not_null"], "is_valid": ["not_null"]},
            },
            EVENT_ID_CONFLICTS: {
                # its own key: attribution/clicks_validated is the clicks_validated source's (dagster-dbt
                # refuses two sources with one key), and the commission run refreshes it too
                "asset_key": [WAREHOUSE, EVENT_ID_CONFLICTS],
                "description": "Copies of an event_id whose content differs from the copy captured first "
                               "(pipelines/lib/event_ids.py); every stage ignores them. Refreshed by the "
                               "click validity asset (before Spark reads the landing zone) and by the "
                               "commission run (before dbt).",
                "columns": {"event_id": ["not_null"], "kept_table": ["not_null"]},
            },
        },
    },
    # its own source (and file): the trace is read by its own staging model and mart
    "attribution": {
        "description": "Spark's attribution outputs read beside the warehouse source (same folders, same glob).",
        "glob_var": "warehouse_glob",
        "tables": {
            "decisions": {
                "identifier": ATTRIBUTION_DECISIONS,
                "asset_key": ["attribution", "attribution_decisions"],
                "description": "The attribution decision trace: one row per (order_paid event, click of its buyer "
                               "in the lookback window, valid or not), with the reason it won or lost (rulebook §4).",
                "columns": {"order_event_id": ["not_null"], "outcome": ["not_null"], "reason": ["not_null"]},
            },
        },
    },
    REFERENCE: {
        "description": "Reference data from the CRM and catalogue, validated by the reference asset.",
        "glob_var": "reference_glob",
        "tables": {
            "promoters": {"asset_key": [REFERENCE, "promoters"], "description": "promoters.csv.",
                          "columns": {"promoter_id": ["not_null"]}},
            "products": {"asset_key": [REFERENCE, "products"], "description": "products.csv.",
                         "columns": {"sku_id": ["not_null"]}},
            "commission_rules": {"asset_key": [REFERENCE, "commission_rules"],
                                 "description": "commission_rules.csv (rate_e4: the rate in 1/10000).",
                                 "columns": {"rule_id": ["not_null"], "rate_e4": ["not_null"]}},
        },
    },
    "settlement": {
        "description": "Tables of the warehouse's DuckDB file written in Python: the registry's ledger of released "
                       "periods (o2p/ledger_mirror.py) and its balances of released periods, brought in step "
                       "with the registry by every BI refresh (o2p/bi.py). Not Parquet: no glob.",
        "schema": "settlement",
        "tables": {
            "ledger_mirror": {
                "asset_key": ["settlement", "ledger_mirror"],
                "description": "What each release booked per (promoter, line, role): entitled, previously booked, "
                               "movement (one row per released period and key that moved).",
                "columns": {"period": ["not_null"], "movement_fen": ["not_null"]},
            },
            "released_balances": {
                "asset_key": ["settlement", "released_balances"],
                "description": "Per released period and promoter: balance, gross paid, carried out and why.",
                "columns": {"period": ["not_null"], "promoter_id": ["not_null"]},
            },
        },
    },
}


def sources_yml(source: str) -> str:
    """The text of `_<source>__sources.yml`, generated from SOURCES."""
    import yaml

    spec = SOURCES[source]
    var = spec.get("glob_var")
    tables = []
    for name, t in spec["tables"].items():
        table: dict = {"name": name}
        if "identifier" in t:
            table["identifier"] = t["identifier"]
        table["description"] = t["description"]
        table["meta"] = {"dagster": {"asset_key": t["asset_key"]}}
        if "loaded_at_field" in t:
            # capture lands within seconds; a day without events is a quiet day, not an outage
            table["config"] = {"loaded_at_field": t["loaded_at_field"],
                               "freshness": {"warn_after": {"count": 1, "period": "day"}}}
        # the columns' not_null tests as one test of the table (`no_nulls`): one scan of the
        # source's files instead of one per column
        not_null = [c for c, tests in t["columns"].items() if "not_null" in tests]
        if not_null:
            table["data_tests"] = [{"no_nulls": {"arguments": {"columns": not_null}}}]
        table["columns"] = [{"name": c, **({"data_tests": rest} if (rest := [x for x in tests if x != "not_null"]) else {})}
                            for c, tests in t["columns"].items()]
        tables.append(table)
    src: dict = {"name": source, "description": spec["description"]}
    if var:
        # the glob (quoted by o2p.quoting.dbt_glob) ends in `{identifier}`, the table's folder; the
        # var's fallback exists for `dbt parse` only: a run without it finds no file of that name
        src["meta"] = {"external_location": f"read_parquet({{{{ var('{var}', \"'{var} unset: see dbt_vars'\") }}}}, "
                                            "union_by_name = true)"}
    else:   # tables of the DuckDB file itself
        src["schema"] = spec["schema"]
    src["tables"] = tables
    doc = {"version": 2, "sources": [src]}
    head = "# Generated by `python -m o2p.layout --sources` from o2p/layout.py:SOURCES; do not edit.\n"
    return head + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=200)


def sources_path(source: str) -> Path:
    return DBT_PROJECT / "models" / "staging" / source / f"_{source}__sources.yml"


def main(argv: list[str]) -> int:
    if argv != ["--sources"]:
        print("usage: python -m o2p.layout --sources   (writes dbt's _<source>__sources.yml files)",
              file=sys.stderr)
        return 2
    for source in SOURCES:
        path = sources_path(source)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(sources_yml(source), encoding="utf-8")
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
