"""`tables_by_date`: a batch's landing rows, grouped by event date, as one Arrow table per date
(what the sink's writer thread encodes to Parquet)."""

from o2p.layout import SCHEMAS
from streaming.capture.sink import tables_by_date


def _refund(i: int, day: str, offset: int) -> dict:
    return {"event_id": f"r{i}", "event_type": "refund", "occurred_at": f"{day}T12:00:00+08:00",
            "occurred_at_us": 1_000 + i, "event_date": day, "source": "bot", "schema_version": 1,
            "refund_id": f"R{i}", "order_id": f"O{i}", "line_id": "L1", "amount_fen": 100 * i, "_offset": offset}


def test_each_date_gets_its_rows_in_order_with_the_shared_columns_filled_in():
    by_date = {"2026-10-06": [_refund(1, "2026-10-06", 7), _refund(3, "2026-10-06", 9)],
               "2026-10-05": [_refund(2, "2026-10-05", 8)]}
    constant = {"_topic": "o2p.refunds.v1", "_partition": 2, "_captured_at_us": 42}
    tables = tables_by_date("refunds", by_date, constant)
    assert list(tables) == ["2026-10-05", "2026-10-06"]
    for day, tbl in tables.items():
        assert tbl.schema == SCHEMAS["refunds"]
        assert tbl.to_pylist() == [{**row, **constant} for row in by_date[day]]


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
    tables = tables_by_date("orders", by_date, constant)
    assert {day: tbl.to_pylist() for day, tbl in tables.items()} == {
        day: [{**row, **constant} for row in rows] for day, rows in by_date.items()}
    assert tables["2026-11-02"].column("lines").to_pylist()[0][2]["paid_fen"] == 30


def test_no_rows_no_tables():
    assert tables_by_date("clicks", {}, {"_topic": "t", "_partition": 0, "_captured_at_us": 0}) == {}
