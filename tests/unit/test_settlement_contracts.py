import json

import pytest

from o2p.reference import Promoter
from o2p.settlement import settle
from o2p.timeutil import parse_rfc3339, period_end_us, to_us
from streaming.contracts import ContractError, validate_event

END_OCT = period_end_us("2026-10")


def prom(pid, openid="o", suspended=None):
    return Promoter(pid, None, "g", f"B{pid}", openid, f"n{pid}", 0, suspended)


def ent(pid, order, entitled, role="direct"):
    return {"promoter_id": pid, "order_id": order, "line_id": "L1", "role": role, "entitled_fen": entitled,
            "net_fen": entitled * 10, "rate_e4": 1000, "click_event_id": "c", "attribution_reason": "last_click"}


def test_period_end_is_shanghai_month_boundary():
    assert END_OCT == to_us(parse_rfc3339("2026-11-01T00:00:00+08:00"))
    assert to_us(parse_rfc3339("2026-10-31T23:30:00+08:00")) < END_OCT


def test_threshold_edges_999_and_1000():
    s = settle("2026-10", END_OCT, [ent("P1", "O1", 999), ent("P2", "O2", 1000)], {}, {},
               {"P1": prom("P1"), "P2": prom("P2")}, {}, threshold_fen=1000, tax_rule="none")
    by = {b.promoter_id: b for b in s.balances}
    assert (by["P1"].gross_fen, by["P1"].carried_out_fen, by["P1"].carry_reason) == (0, 999, "below_threshold")
    assert (by["P2"].gross_fen, by["P2"].net_fen, by["P2"].carried_out_fen) == (1000, 1000, 0)


def test_late_refund_is_negative_movement_and_carried():
    # October booked 1500 on O1; in November the line is worth 300 → movement −1200,
    # with nothing else the balance is −1200 and is carried as negative.
    booked = {("P1", "O1", "L1", "direct"): 1500}
    s = settle("2026-11", period_end_us("2026-11"), [ent("P1", "O1", 300)], booked, {},
               {"P1": prom("P1")}, {}, threshold_fen=1000, tax_rule="none")
    (b,) = s.balances
    assert (b.movement_fen, b.balance_fen, b.carried_out_fen, b.carry_reason) == (-1200, -1200, -1200, "negative")
    assert [(r.entitled_fen, r.previously_booked_fen, r.movement_fen) for r in s.statement] == [(300, 1500, -1200)]


def test_reattributed_line_claws_back_from_old_promoter():
    booked = {("P1", "O1", "L1", "direct"): 500}
    s = settle("2026-11", period_end_us("2026-11"), [ent("P2", "O1", 500)], booked, {"P1": 600},
               {"P1": prom("P1"), "P2": prom("P2")}, {}, threshold_fen=1000, tax_rule="none")
    by = {b.promoter_id: b for b in s.balances}
    assert (by["P1"].movement_fen, by["P1"].balance_fen, by["P1"].carry_reason) == (-500, 100, "below_threshold")
    assert by["P2"].movement_fen == 500


def test_suspended_no_payee_carry():
    s = settle("2026-10", END_OCT, [ent("P1", "O1", 5000), ent("P2", "O2", 5000)], {}, {},
               {"P1": prom("P1", suspended=END_OCT - 1), "P2": prom("P2", openid=None)}, {},
               threshold_fen=1000, tax_rule="none")
    assert {b.promoter_id: b.carry_reason for b in s.balances} == {"P1": "suspended", "P2": "no_payee"}
    # Suspended exactly at end(P) is not "before end(P)": paid.
    s2 = settle("2026-10", END_OCT, [ent("P1", "O1", 5000)], {}, {}, {"P1": prom("P1", suspended=END_OCT)}, {},
                threshold_fen=1000, tax_rule="none")
    assert s2.balances[0].gross_fen == 5000


def _click(**kw):
    e = {"event_id": "c1", "event_type": "click", "occurred_at": "2026-11-30T23:30:00+08:00",
         "source": "bot", "schema_version": 1, "promoter_id": "P", "share_id": "S", "buyer_id": "B",
         "device_id": "D", "sku_id": "K", "channel": "group", "ip": "203.0.113.9"}
    e.update(kw)
    return json.dumps(e).encode()


def test_click_row_has_shanghai_date_and_no_raw_ip():
    row = validate_event(_click(), "clicks", ip_hasher=lambda ip: "h:" + ip[::-1])
    assert row["event_date"] == "2026-11-30" and "ip" not in row and row["ip_hash"] == "h:9.311.0.302"
    row = validate_event(_click(occurred_at="2026-11-30T16:10:00Z"), "clicks")
    assert row["event_date"] == "2026-12-01"


@pytest.mark.parametrize("raw, reason", [
    (b"\xff\xfe", "not valid UTF-8 JSON"),
    (b"[1]", "must be a JSON object"),
    (b'{"event_type": "teleport"}', "unknown event_type"),
    (_click(channel="tv"), "channel"),
    (_click(occurred_at="2026-11-30T23:30:00"), "no UTC offset"),
    (_click(schema_version="1"), "schema_version"),
    (_click(extra=1), "unknown field"),
])
def test_bad_events_get_a_reason(raw, reason):
    with pytest.raises(ContractError) as exc:
        validate_event(raw, "clicks")
    assert reason in str(exc.value)


def test_paid_fen_arithmetic_and_currency():
    order = {"event_id": "o", "event_type": "order_paid", "occurred_at": "2026-10-01T00:00:00+08:00",
             "source": "storefront", "schema_version": 1, "order_id": "O", "buyer_id": "B", "currency": "CNY",
             "lines": [{"line_id": "L", "sku_id": "K", "quantity": 2, "unit_price_fen": 100, "discount_fen": 10, "paid_fen": 190}]}
    assert validate_event(json.dumps(order).encode(), "orders")["lines"][0]["paid_fen"] == 190
    order["lines"][0]["paid_fen"] = 191
    with pytest.raises(ContractError, match="paid_fen 191"):
        validate_event(json.dumps(order).encode(), "orders")
    order["lines"][0]["paid_fen"] = 190
    order["currency"] = "USD"
    with pytest.raises(ContractError, match="currency"):
        validate_event(json.dumps(order).encode(), "orders")
    with pytest.raises(ContractError, match="belongs on the orders topic"):
        validate_event(json.dumps({**order, "currency": "CNY"}).encode(), "clicks")


def test_the_json_schema_in_the_repo_is_the_one_the_contracts_generate():
    """Upstream teams read streaming/schemas/events.v1.schema.json; it must never drift from the
    models (regenerate: ./dev contracts > streaming/schemas/events.v1.schema.json)."""
    from pathlib import Path

    from streaming.contracts import event_json_schema

    path = Path(__file__).resolve().parents[2] / "streaming" / "schemas" / "events.v1.schema.json"
    assert json.loads(path.read_text(encoding="utf-8")) == event_json_schema()
