"""pipelines.lib.duck.replace_period: one period's rows, the table and any added column commit
together or not at all (a warehouse made before a column existed is upgraded in the same
transaction as the rows that need it)."""

import duckdb
import pandas as pd
import pytest

from pipelines.lib.duck import replace_period

OLD = """(period varchar not null, promoter_id varchar not null, carried_in_fen bigint not null,
        movement_fen bigint not null, balance_fen bigint not null, gross_fen bigint not null,
        tax_fen bigint not null, net_fen bigint not null, carried_out_fen bigint not null,
        carry_reason varchar, primary key (period, promoter_id))"""


def _row(period, pid, net, returned=0):
    return {"period": period, "promoter_id": pid, "carried_in_fen": 0, "movement_fen": net, "balance_fen": net,
            "gross_fen": net, "tax_fen": 0, "net_fen": net, "carried_out_fen": 0, "carry_reason": None,
            "returned_fen": returned}


@pytest.fixture()
def con():
    c = duckdb.connect()
    c.execute("create schema settlement")
    c.execute(f"create table settlement.promoter_balances {OLD}")   # made before returned_fen
    c.execute("insert into settlement.promoter_balances values ('2026-09','P1',0,500,500,500,0,500,0,null)")
    yield c
    c.close()


def _columns(c):
    return [r[0] for r in c.execute("select column_name from information_schema.columns where "
                                    "table_name = 'promoter_balances' order by ordinal_position").fetchall()]


def test_replaces_one_period_and_adds_the_new_column(con):
    replace_period(con, "settlement.promoter_balances", "2026-10", pd.DataFrame([_row("2026-10", "P1", 700, 120)]))
    replace_period(con, "settlement.promoter_balances", "2026-10", pd.DataFrame([_row("2026-10", "P2", 300, 0)]))
    assert _columns(con)[-1] == "returned_fen"
    assert con.execute("select period, promoter_id, net_fen, returned_fen from settlement.promoter_balances "
                       "order by period, promoter_id").fetchall() == [("2026-09", "P1", 500, 0),
                                                                      ("2026-10", "P2", 300, 0)]


def test_a_failed_insert_leaves_rows_and_columns_as_they_were(con):
    bad = pd.DataFrame([_row("2026-09", "P1", 900, 50), _row("2026-09", "P1", 901, 50)])   # duplicate key
    with pytest.raises(duckdb.ConstraintException):
        replace_period(con, "settlement.promoter_balances", "2026-09", bad)
    assert "returned_fen" not in _columns(con)
    assert con.execute("select promoter_id, net_fen from settlement.promoter_balances").fetchall() == [("P1", 500)]
    # and the connection is usable again (no transaction left open)
    replace_period(con, "settlement.promoter_balances", "2026-09", pd.DataFrame([_row("2026-09", "P1", 900, 50)]))
    assert con.execute("select net_fen, returned_fen from settlement.promoter_balances").fetchall() == [(900, 50)]
