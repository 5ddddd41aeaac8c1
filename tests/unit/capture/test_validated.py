"""`landing_table` and `Validated`: a batch's landing rows, grouped by event date, as one Arrow
table (what the capture process sends when it validated a batch itself), one slice per date (what
the sink's writer thread encodes to Parquet), and the part of it from an offset on (a re-delivery)."""

from o2p.layout import SCHEMAS
from streaming.capture.sink import Validated, Validator, landing_table

REFUNDS = {"_topic": "o2p.refunds.v1", "_partition": 2, "_captured_at_us": 42}


def _refund(i: int, day: str, offset: int) -> dict:
    return {"event_id": f"r{i}", "event_type": "refund", "occurred_at": f"{day}T12:00:00+08:00",
            "occurred_at_us": 1_000 + i, "event_date": day, "source": "bot", "schema_version": 1,
            "refund_id": f"R{i}", "order_id": f"O{i}", "line_id": "L1", "amount_fen": 100 * i, "_offset": offset}


BY_DATE = {"2026-10-06": [_refund(1, "2026-10-06", 7), _refund(3, "2026-10-06", 9)],
           "2026-10-05": [_refund(2, "2026-10-05", 8)]}


def test_the_dates_in_order_each_with_its_rows_in_order_and_the_shared_columns_filled_in():
    table, days = landing_table("refunds", BY_DATE, REFUNDS)
    assert table.schema == SCHEMAS["refunds"]
    assert days == [("2026-10-05", 1), ("2026-10-06", 2)]
    assert table.to_pylist() == [{**row, **REFUNDS} for day in ("2026-10-05", "2026-10-06") for row in BY_DATE[day]]
    by_date = Validated(table, days, [], 42).by_date()
    assert {day: t.to_pylist() for day, t in by_date.items()} == {
        day: [{**row, **REFUNDS} for row in rows] for day, rows in BY_DATE.items()}


def test_a_nested_column_and_nulls_survive_the_slicing():
    def order(i, day, share):
        return {"event_id": f"o{i}", "event_type": "order_paid", "occurred_at": f"{day}T01:00:00Z",
                "occurred_at_us": i, "event_date": day, "source": "storefront", "schema_version": 1,
                "order_id": f"O{i}", "buyer_id": "B", "share_id": share, "currency": "CNY", "_offset": i,
                "lines": [{"line_id": f"L{j}", "sku_id": "K", "quantity": j, "unit_price_fen": 10,
                           "discount_fen": 0, "paid_fen": 10 * j} for j in range(1, i + 1)]}
    by_date = {"2026-11-01": [order(1, "2026-11-01", None), order(2, "2026-11-01", "S")],
               "2026-11-02": [order(3, "2026-11-02", "S")]}
    constant = {"_topic": "o2p.orders.v1", "_partition": 0, "_captured_at_us": 7}
    tables = Validated(*landing_table("orders", by_date, constant), [], 7).by_date()
    assert {day: t.to_pylist() for day, t in tables.items()} == {
        day: [{**row, **constant} for row in rows] for day, rows in by_date.items()}
    assert tables["2026-11-02"].column("lines").to_pylist()[0][2]["paid_fen"] == 30


def test_since_keeps_the_rows_and_dead_letters_from_an_offset_on_and_drops_emptied_dates():
    dead = [{"_offset": 6, "reason": "x"}, {"_offset": 10, "reason": "y"}]
    v = Validated(*landing_table("refunds", BY_DATE, REFUNDS), dead, 42)
    later = v.since(9)
    assert later.days == [("2026-10-06", 1)]
    assert later.table.to_pylist() == [{**BY_DATE["2026-10-06"][1], **REFUNDS}]
    assert later.dead == [{"_offset": 10, "reason": "y"}] and later.now_us == 42
    assert v.since(8).days == [("2026-10-05", 1), ("2026-10-06", 1)]
    nothing = v.since(11)
    assert (nothing.days, nothing.table.num_rows, nothing.dead, nothing.table.schema) == ([], 0, [], SCHEMAS["refunds"])


def test_no_rows_no_dates():
    table, days = landing_table("clicks", {}, {"_topic": "t", "_partition": 0, "_captured_at_us": 0})
    assert (table.num_rows, days) == (0, [])


def _records():
    from streaming.capture.sink import Rec
    from tests.unit.capture.sink_helpers import IPS, click

    days = ["2026-11-29T10:00:00+08:00", "2026-11-30T23:30:00+08:00", "2026-11-28T00:00:01Z"]
    recs = [Rec(i, b"B", click(i, ip=IPS[i % len(IPS)], occurred_at=days[i % 3]), 0) for i in range(12)]
    recs[4] = Rec(4, IPS[0].encode(), b'{"event_type": "click", "ip": "' + IPS[1].encode() + b'"', 0)   # broken
    recs[7] = Rec(7, None, None, 0)
    return recs


def _landed(sink):
    from tests.unit.capture.sink_helpers import rows

    landing = sink.cfg.landing_path
    files = sorted(str(p.relative_to(landing)) for p in landing.rglob("*.parquet"))
    return files, rows(landing, "clicks"), rows(landing, "deadletters")


def test_a_batch_validated_by_the_capture_process_lands_as_if_the_sink_had_validated_it(sink, tmp_path):
    """The same records, landed by one sink as it receives them and by another after the capture
    process's Validator did step 1 (the sink process gets only offsets and timestamps then), with a
    re-delivery of offsets 0-5 in the second batch: the same files, rows and dead letters."""
    import time
    from collections import defaultdict

    from o2p.config import load_config
    from streaming.capture.sink import Batch, Sink
    from tests.recording_producer import RecordingProducer
    from tests.unit.capture.sink_helpers import CLICKS

    recs = _records()
    sink.land(CLICKS, 0, recs[:8])
    sink.land(CLICKS, 0, recs[2:])
    other = Sink(load_config(None, home=tmp_path / "other"))
    other.dlq = RecordingProducer()
    other.acquire(CLICKS, 0)
    other.recover(CLICKS, 0)
    here = Validator(other.cfg)
    for part in (recs[:8], recs[2:]):
        batch = Batch.of(part)
        validated = here.validate(CLICKS, 0, batch, time.time_ns() // 1000, defaultdict(float))
        other.commit(other.prepare(CLICKS, 0, Batch(batch.offsets, [], [], batch.timestamps), False, validated))
    other.release(CLICKS, 0)
    assert _landed(other) == _landed(sink)
    files, clicks, dead = _landed(sink)
    assert sorted(r["_offset"] for r in clicks) == [0, 1, 2, 3, 5, 6, 8, 9, 10, 11]
    assert sorted(r["_offset"] for r in dead) == [4, 7]
    assert other.dlq.sent == sink.dlq.sent
