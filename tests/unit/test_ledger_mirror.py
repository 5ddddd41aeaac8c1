"""The settlement's movement in DuckDB (o2p.ledger_mirror.movements) is the rulebook's, as the
reference `o2p.settlement.movements` computes it, on random ledgers and entitlements."""

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from o2p import ledger_mirror
from o2p.settlement import movements

KEYS = st.tuples(st.sampled_from(["P1", "P2", "推客3"]), st.sampled_from(["O1", "O2", "O3", "O4"]),
                 st.sampled_from(["L1", "L2"]), st.sampled_from(["direct", "override"]))
AMOUNT = st.integers(min_value=-50, max_value=5000) | st.just(0)


def load(con, ledger: dict, ents: list[dict]) -> None:
    con.execute("create schema if not exists settlement")
    con.execute("create schema if not exists marts")
    con.execute(ledger_mirror._DDL)
    con.execute("create table marts.fct_commission_entitlements (period varchar, promoter_id varchar, order_id varchar, "
                "line_id varchar, role varchar, click_event_id varchar, attribution_reason varchar, rate_e4 integer, "
                "net_fen bigint, entitled_fen bigint)")
    for (period, key), entitled in ledger.items():
        con.execute(f"insert into {ledger_mirror.MIRROR} values (?, ?, ?, ?, ?, ?, 0, 0)", [period, *key, entitled])
    for e in ents:
        con.execute("insert into marts.fct_commission_entitlements by name select * from (select ? as period, ? as promoter_id, "
                    "? as order_id, ? as line_id, ? as role, ? as click_event_id, ? as attribution_reason, ? as rate_e4, "
                    "? as net_fen, ? as entitled_fen)",
                    ["2026-11", e["promoter_id"], e["order_id"], e["line_id"], e["role"], e["click_event_id"],
                     e["attribution_reason"], e["rate_e4"], e["net_fen"], e["entitled_fen"]])


@settings(max_examples=60, deadline=None)
@given(ledger=st.dictionaries(st.tuples(st.sampled_from(["2026-08", "2026-09", "2026-10", "2026-11"]), KEYS),
                              AMOUNT, max_size=25),
       ents=st.dictionaries(KEYS, st.tuples(AMOUNT, st.none() | st.just("c9")), max_size=20))
def test_sql_movement_equals_the_reference(ledger, ents):
    entitlements = [{"promoter_id": k[0], "order_id": k[1], "line_id": k[2], "role": k[3], "entitled_fen": a,
                     "net_fen": a * 10, "rate_e4": 1000, "click_event_id": c, "attribution_reason": c and "last_click"}
                    for k, (a, c) in ents.items()]
    booked: dict = {}
    for (period, key), entitled in sorted(ledger.items()):   # the latest earlier period wins
        if period < "2026-11":
            booked[key] = entitled
    want = sorted(movements(entitlements, booked), key=lambda r: (r.promoter_id, r.order_id, r.line_id, r.role))
    con = duckdb.connect()
    load(con, ledger, entitlements)
    assert ledger_mirror.movements(con, "2026-11") == want


def test_a_line_entitled_twice_is_refused_as_in_the_reference():
    con = duckdb.connect()
    e = {"promoter_id": "P1", "order_id": "O1", "line_id": "L1", "role": "direct", "entitled_fen": 5,
         "net_fen": 50, "rate_e4": 1000, "click_event_id": None, "attribution_reason": None}
    load(con, {}, [e, e])
    with pytest.raises(ValueError, match=r"entitlement \('P1', 'O1', 'L1', 'direct'\) appears twice"):
        ledger_mirror.movements(con, "2026-11")
    with pytest.raises(ValueError, match=r"entitlement \('P1', 'O1', 'L1', 'direct'\) appears twice"):
        movements([e, e], {})
