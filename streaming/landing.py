"""The landing zone's layout and Arrow schemas (shared by capture, Spark and dbt).

    landing/<table>/event_date=YYYY-MM-DD/<topic>+<partition>+<first>+<last>.parquet
    landing/deadletters/capture_date=YYYY-MM-DD/<topic>+<partition>+<first>+<last>.parquet
    landing/_state/<topic>+<partition>.json     the commit point of each partition
    landing/_tmp/                               files written but not yet committed

`event_date` is the Asia/Shanghai date of `occurred_at`, so a late event lands
in the (old) partition it belongs to, and that partition's assets re-run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa

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
TABLES = ("clicks", "orders", "refunds")


def file_name(topic: str, partition: int, first: int, last: int) -> str:
    return f"{topic}+{partition}+{first:020d}+{last:020d}.parquet"


def landed_dates(landing: Path, table: str) -> list[str]:
    root = landing / table
    if not root.is_dir():
        return []
    return sorted(
        p.name.split("=", 1)[1] for p in root.iterdir()
        if p.is_dir() and p.name.startswith("event_date=") and any(p.glob("*.parquet"))
    )


def landed_days(landing: Path) -> list[str]:
    """Every event date with landed files in any event table, in order."""
    return sorted({d for t in TABLES for d in landed_dates(landing, t)})


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomic(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def read_states(landing: Path) -> list[dict]:
    root = landing / "_state"
    if not root.is_dir():
        return []
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(root.glob("*.json"))]


def ensure_schema_files(landing: Path) -> None:
    """An empty Parquet file with each table's schema under <table>/_schema/, so readers that
    glob the landing zone (dbt) work before the first event of a kind has arrived."""
    import pyarrow.parquet as pq

    for table in (*TABLES, "deadletters"):
        path = landing / table / "_schema" / "empty.parquet"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(SCHEMAS[table].empty_table(), path)
