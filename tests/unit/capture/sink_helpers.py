"""What the sink's unit tests share: a clicks topic, a frozen capture time, a click message, and
the rows landed in a table (the `sink` fixture itself is in conftest.py)."""

import json
from pathlib import Path

import pyarrow.parquet as pq

from o2p.timeutil import parse_rfc3339, to_us

CLICKS = "o2p.clicks.v1"
CAPTURED_US = to_us(parse_rfc3339("2026-12-01T10:00:00+08:00"))
IPS = ["203.0.113.99", "198.51.100.23", "2001:db8::1", "2001:0db8:0000:0000:0000:ff00:0042:8329",
       "::ffff:203.0.113.9", "192.0.2.44", "192.0.2.45", "192.0.2.46", "192.0.2.47"]


def click(i, ip="192.0.2.1", **kw) -> bytes:
    e = {"event_id": f"c{i}", "event_type": "click", "occurred_at": "2026-11-30T23:30:00+08:00", "source": "bot",
         "schema_version": 1, "promoter_id": "P", "share_id": "S", "buyer_id": "B", "device_id": "D",
         "sku_id": "K", "channel": "group", "user_agent": "Mozilla/5.0 Chrome/120.0.6099.109", "ip": ip}
    e.update(kw)
    return json.dumps(e).encode()


def rows(landing: Path, table: str) -> list[dict]:
    found = []
    for f in sorted((landing / table).rglob("*.parquet")):
        found += pq.read_table(f).to_pylist()
    return found

