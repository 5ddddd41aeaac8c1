"""Conflicting event ids (rulebook §1): the copy captured first is kept, later different copies
are named, retries are not conflicts (pipelines/lib/event_ids.py, on real Parquet and DuckDB)."""

import re
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from o2p.config import load_config
from o2p.layout import SCHEMAS
from pipelines.lib import event_ids

REPO = Path(__file__).resolve().parents[2]


def _order(eid, order_id, fen, topic="o2p.orders.v1", partition=0, offset=0, captured=0, day="2026-10-02"):
    return {"event_id": eid, "event_type": "order_paid", "occurred_at": f"{day}T12:00:00+08:00",
            "occurred_at_us": 1_790_000_000_000_000, "event_date": day, "source": "storefront",
            "schema_version": 1, "order_id": order_id, "buyer_id": "U1", "share_id": None, "currency": "CNY",
            "lines": [{"line_id": "L1", "sku_id": "S", "quantity": 1, "unit_price_fen": fen, "discount_fen": 0,
                       "paid_fen": fen}],
            "_topic": topic, "_partition": partition, "_offset": offset, "_captured_at_us": captured}


def _click(eid, captured, offset, day="2026-10-02"):
    return {"event_id": eid, "event_type": "click", "occurred_at": f"{day}T11:00:00+08:00",
            "occurred_at_us": 1_789_990_000_000_000, "event_date": day, "source": "bot", "schema_version": 1,
            "promoter_id": "P", "share_id": "S", "buyer_id": "U1", "device_id": "D", "sku_id": "S",
            "channel": "group", "user_agent": None, "ip_hash": None,
            "_topic": "o2p.clicks.v1", "_partition": 0, "_offset": offset, "_captured_at_us": captured}


def _land(home: Path, table: str, rows: list[dict], name: str) -> None:
    by_day: dict[str, list] = {}
    for r in rows:
        by_day.setdefault(r["event_date"], []).append(r)
    for day, rs in by_day.items():
        p = home / "landing" / table / f"event_date={day}" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rs, schema=SCHEMAS[table]), p)


def test_the_first_captured_copy_wins_whatever_its_partition(tmp_path):
    cfg = load_config(home=tmp_path)
    # o1: paid at 100 fen, captured first in partition 2; a later copy with another order and
    # 99900 fen lands in partition 0 (a lower partition: the old ordering kept it)
    _land(tmp_path, "orders", [_order("o1", "O1", 100, partition=2, offset=5, captured=1000)], "a.parquet")
    _land(tmp_path, "orders", [_order("o1", "O9", 99900, partition=0, offset=1, captured=2000),
                               _order("o2", "O2", 300, partition=0, offset=2, captured=2000),
                               _order("o2", "O2", 300, partition=1, offset=7, captured=2500)],   # a retry
          "b.parquet")
    # a click reusing an order's event_id, captured later, on another day; and one captured earlier
    _land(tmp_path, "clicks", [_click("o2", captured=3000, offset=4, day="2026-10-05"),
                               _click("o3", captured=10, offset=5)], "c.parquet")
    _land(tmp_path, "orders", [_order("o3", "O3", 500, partition=0, offset=9, captured=20)], "d.parquet")
    assert event_ids.refresh(cfg) == 3
    got = pq.read_table(event_ids.path(cfg)).to_pylist()
    assert [(g["event_id"], g["landed_table"], g["_topic"], g["_partition"], g["_offset"],
             g["kept_table"], g["kept_partition"], g["kept_offset"]) for g in got] == [
        ("o1", "orders", "o2p.orders.v1", 0, 1, "orders", 2, 5),
        ("o2", "clicks", "o2p.clicks.v1", 0, 4, "orders", 0, 2),
        ("o3", "orders", "o2p.orders.v1", 0, 9, "clicks", 0, 5),
    ]
    # what a stage reads after dropping them: o1 at 100 fen, o2 once, no order o3
    con = duckdb.connect()
    files = [str(p) for p in sorted((tmp_path / "landing" / "orders").glob("*/*.parquet"))]
    kept = con.execute(
        f"select event_id, order_id, lines[1].paid_fen from read_parquet({files!r}) e "
        f"where {event_ids.not_a_loser_sql('e', cfg)} "
        f"qualify row_number() over (partition by event_id order by {', '.join(event_ids.CAPTURE_ORDER)}) = 1 "
        "order by 1").fetchall()
    assert kept == [("o1", "O1", 100), ("o2", "O2", 300)]


def test_an_empty_landing_zone_has_no_conflicts(tmp_path):
    cfg = load_config(home=tmp_path)
    assert event_ids.refresh(cfg) == 0
    assert pq.read_table(event_ids.path(cfg)).schema.equals(event_ids.SCHEMA)


def test_the_dbt_dedupe_orders_copies_as_the_python_constant_does():
    macro = (REPO / "dbt_project" / "macros" / "dedupe_events.sql").read_text()
    order = re.search(r"order by ([^)]*)\)", macro).group(1)
    assert [c.strip().removeprefix("e.") for c in order.split(",")] == list(event_ids.CAPTURE_ORDER)


def test_a_refund_reusing_an_order_events_id_is_a_conflict_and_a_retried_refund_is_not(tmp_path):
    cfg = load_config(home=tmp_path)
    _land(tmp_path, "orders", [_order("e1", "O1", 100, captured=10)], "a.parquet")
    refund = {"event_id": "e1", "event_type": "refund", "occurred_at": "2026-10-03T12:00:00+08:00",
              "occurred_at_us": 1_790_100_000_000_000, "event_date": "2026-10-03", "source": "storefront",
              "schema_version": 1, "refund_id": "R1", "order_id": "O1", "line_id": "L1", "amount_fen": 100,
              "_topic": "o2p.refunds.v1", "_partition": 0, "_offset": 0, "_captured_at_us": 20}
    retried = {**refund, "event_id": "r2", "_offset": 1}
    _land(tmp_path, "refunds", [refund, retried, {**retried, "_offset": 2, "_captured_at_us": 30}], "b.parquet")
    assert event_ids.refresh(cfg) == 1
    [loser] = pq.read_table(event_ids.path(cfg)).to_pylist()
    assert (loser["event_id"], loser["landed_table"], loser["kept_table"]) == ("e1", "refunds", "orders")


def test_a_kept_copy_stays_kept_when_a_later_copy_claims_an_earlier_capture_time(tmp_path):
    """A second capture host whose clock runs behind must not flip a decision already made."""
    cfg = load_config(home=tmp_path)
    _land(tmp_path, "orders", [_order("o1", "O1", 100, offset=1, captured=1000),
                               _order("o1", "O2", 200, offset=2, captured=2000)], "a.parquet")
    assert event_ids.refresh(cfg) == 1      # O2's copy loses
    _land(tmp_path, "orders", [_order("o1", "O3", 300, partition=1, offset=0, captured=500)], "b.parquet")
    assert event_ids.refresh(cfg) == 2
    got = {(g["_partition"], g["_offset"]): (g["kept_partition"], g["kept_offset"])
           for g in pq.read_table(event_ids.path(cfg)).to_pylist()}
    assert got == {(0, 2): (0, 1), (1, 0): (0, 1)}   # O1's copy is still the one kept


def test_judged_again_only_when_a_landed_file_or_the_judgement_changed(tmp_path, monkeypatch):
    cfg = load_config(home=tmp_path)
    _land(tmp_path, "orders", [_order("o1", "O1", 100, offset=1, captured=1000)], "a.parquet")
    _land(tmp_path, "orders", [_order("o1", "O9", 200, offset=2, captured=2000)], "b.parquet")
    judged = []
    find = event_ids.find
    monkeypatch.setattr(event_ids, "find", lambda con, c: judged.append(1) or find(con, c))
    assert event_ids.refresh(cfg) == 1 and len(judged) == 1
    assert event_ids.refresh(cfg) == 1 and len(judged) == 1          # nothing changed: the file stands
    # a file landed since: judged again, and the new copy is a conflict too
    _land(tmp_path, "orders", [_order("o1", "O7", 300, offset=3, captured=3000)], "c.parquet")
    assert event_ids.refresh(cfg) == 2 and len(judged) == 2
    # the judgement removed by hand: written again
    event_ids.path(cfg).unlink()
    assert event_ids.refresh(cfg) == 2 and len(judged) == 3
    assert [r["_offset"] for r in pq.read_table(event_ids.path(cfg)).to_pylist()] == [2, 3]
