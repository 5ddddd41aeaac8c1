"""The release registry on SQLite and on a real PostgreSQL server: one claim per period however
many releases race for it, stale claims, and what later periods read back."""

import os
import socket
import subprocess
import sys
import threading

import pytest

from o2p.errors import O2PError
from o2p.registry import Registry, batches
from o2p.tax import PriorPayout

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.sqlite'}"
    return request.getfixturevalue("postgres").database(f"reg_{request.node.name[-40:].lower()}".replace("[", "_").replace("]", "").replace("-", "_"))


def test_racing_claims_one_wins_the_others_are_refused(url):
    Registry(url)   # create the tables once, as a deployed registry has them
    n = 6
    barrier = threading.Barrier(n)
    outcomes: list = [None] * n

    def attempt(i: int) -> None:
        reg = Registry(url)      # its own engine and connections, as separate processes would
        barrier.wait()
        try:
            reg.claim("2026-10", f"batch-{i}")
            outcomes[i] = "won"
        except O2PError as exc:
            outcomes[i] = str(exc)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("won") == 1, outcomes
    winner = Registry(url).batch("2026-10")
    assert winner["status"] == "releasing" and winner["batch_id"] == f"batch-{outcomes.index('won')}"
    for o in outcomes:
        if o != "won":
            assert "2026-10 is being released by another process" in o and winner["batch_id"] in o


def _claim_as(url: str, claimed_by: str) -> None:
    from sqlalchemy import insert

    reg = Registry(url)
    with reg.engine.begin() as c:
        c.execute(insert(batches).values(period="2026-10", batch_id="old", status="releasing",
                                         claimed_at="2026-11-02T00:00:00+00:00", claimed_by=claimed_by))


def test_a_claim_left_by_a_dead_release_on_this_host_is_taken_over(url):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _claim_as(url, f"pid {dead.pid} on {socket.gethostname()}")
    reg = Registry(url)
    reg.claim("2026-10", "new")
    b = reg.batch("2026-10")
    assert (b["batch_id"], b["claimed_by"]) == ("new", f"pid {os.getpid()} on {socket.gethostname()}")


@pytest.mark.parametrize("holder", ["live", "other_host"])
def test_a_live_or_foreign_claim_is_refused_until_abandoned(url, holder):
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        who = f"pid {live.pid} on {socket.gethostname()}" if holder == "live" else "pid 1 on some-other-host"
        _claim_as(url, who)
        reg = Registry(url)
        with pytest.raises(O2PError, match=f"being released by another process \\({who}"):
            reg.claim("2026-10", "new")
        assert reg.abandon("2026-10") == 1
        reg.claim("2026-10", "new")
        assert reg.batch("2026-10")["batch_id"] == "new"
    finally:
        live.kill()
        live.wait()


def test_released_periods_read_back_for_the_next_ones(url):
    reg = Registry(url)
    for period, gross, tax, entitled, carried in (("2026-10", 700000, 1800, 3000, -250),
                                                  ("2026-11", 700000, 1800, 0, 0)):
        reg.claim(period, f"b-{period}")
        reg.complete(
            period, folder=f"/x/{period}", totals={"row_count": 1, "gross_fen": gross, "tax_fen": tax,
                                                   "net_fen": gross - tax},
            files={"payout.csv": "ab" * 32}, manifest_sha256="cd" * 32, config_hash="h", input_fingerprint="f",
            entries=[{"promoter_id": "P1", "order_id": "O1", "line_id": "L1", "role": "direct",
                      "entitled_fen": entitled, "previously_booked_fen": 0, "movement_fen": entitled}],
            balance_rows=[
                {"promoter_id": "P1", "carried_in_fen": 0, "movement_fen": gross, "balance_fen": gross,
                 "gross_fen": gross, "tax_fen": tax, "net_fen": gross - tax, "carried_out_fen": 0, "carry_reason": None},
                {"promoter_id": "P2", "carried_in_fen": 0, "movement_fen": carried, "balance_fen": carried,
                 "gross_fen": 0, "tax_fen": 0, "net_fen": 0, "carried_out_fen": carried,
                 "carry_reason": "negative" if carried else None},
            ])
    assert [(b["period"], b["status"], b["gross_fen"]) for b in reg.released()] == [
        ("2026-10", "released", 700000), ("2026-11", "released", 700000)]
    # booked(p, l) is the latest released period's entitled value: November's 0, not October's 3000
    assert reg.booked_before("2026-11") == {("P1", "O1", "L1", "direct"): 3000}
    assert reg.booked_before("2026-12") == {("P1", "O1", "L1", "direct"): 0}
    assert reg.carried_into("2026-10") == {"P2": -250}
    assert reg.prior_payouts("2026-12") == {"P1": [PriorPayout(10, 700000, 1800), PriorPayout(11, 700000, 1800)]}
    assert reg.prior_payouts("2027-01") == {}          # a new tax year
    assert reg.files("2026-10") == {"payout.csv": "ab" * 32}
    with pytest.raises(O2PError, match="already released"):
        reg.claim("2026-10", "again")
    assert reg.abandon("2026-10") == 0                # a released period is never removed


def _release(reg: Registry, period: str, entries: list[tuple]) -> None:
    reg.claim(period, f"b-{period}")
    reg.complete(period, folder=f"/x/{period}", totals={"row_count": 0, "gross_fen": 0, "tax_fen": 0, "net_fen": 0},
                 files={}, manifest_sha256="cd" * 32, config_hash="h", input_fingerprint="f",
                 entries=[dict(zip(("promoter_id", "order_id", "line_id", "role", "entitled_fen",
                                    "previously_booked_fen", "movement_fen"), e, strict=True)) for e in entries],
                 balance_rows=[])


def test_the_duckdb_ledger_mirror_follows_the_registry_and_repairs_itself(url):
    """The settlement's DuckDB copy of the ledger: loaded from the registry once, then only the
    newest period each month; a copy that lost, changed or invented a period is put right from
    the registry before it is used, and a registry from before `ledger_totals` still works."""
    import duckdb
    from sqlalchemy import delete

    from o2p import ledger_mirror
    from o2p.registry import ledger_totals

    reg = Registry(url)
    _release(reg, "2026-09", [("P1", "O1", "L1", "direct", 3000, 0, 3000), ("P2", "O2", "L1", "direct", 1500, 0, 1500),
                              ("P9", "O2", "L1", "override", 300, 0, 300)])
    _release(reg, "2026-10", [("P1", "O1", "L1", "direct", 1000, 3000, -2000), ("P3", "O3", "L2", "direct", 999, 0, 999)])
    con = duckdb.connect()

    def mirror():
        return con.execute(f"select * from {ledger_mirror.MIRROR} order by all").fetchall()

    assert ledger_mirror.sync(con, reg, "2026-10") == {"reloaded": ["2026-09"], "dropped": []}
    assert ledger_mirror.sync(con, reg, "2026-11") == {"reloaded": ["2026-10"], "dropped": []}
    assert ledger_mirror.sync(con, reg, "2026-11") == {"reloaded": [], "dropped": []}    # in step: no reads
    good = mirror()
    assert len(good) == 5 and ("2026-10", "P1", "O1", "L1", "direct", 1000, 3000, -2000) in good

    # lose a period, change an amount, invent a period: each is put right from the registry
    con.execute(f"delete from {ledger_mirror.MIRROR} where period = '2026-09'")
    con.execute(f"update {ledger_mirror.MIRROR} set entitled_fen = 1001 where period = '2026-10' and order_id = 'O1'")
    con.execute(f"insert into {ledger_mirror.MIRROR} values ('2026-08', 'P7', 'O7', 'L1', 'direct', 5, 0, 5)")
    assert ledger_mirror.sync(con, reg, "2026-11") == {"reloaded": ["2026-09", "2026-10"], "dropped": ["2026-08"]}
    assert mirror() == good

    # a registry released before ledger_totals existed: totals come from the ledger itself
    with reg.engine.begin() as c:
        c.execute(delete(ledger_totals))
    assert reg.ledger_totals("2026-11") == {"2026-09": (3, 4800, 4800), "2026-10": (2, 1999, -1001)}
    assert ledger_mirror.sync(con, reg, "2026-11") == {"reloaded": [], "dropped": []}

    # the movement of November against it: O1 is worth 0 now (−1000), O3 unchanged, O4 new, and
    # P9's override (booked 300 in September, absent now: re-attributed) is taken back
    con.execute("create schema marts")
    con.execute("""create table marts.fct_commission_entitlements as select * from (values
        ('2026-11', 'P1', 'O1', 'L1', 'direct', 'c1', 'last_click', 1000, 0, 0),
        ('2026-11', 'P2', 'O2', 'L1', 'direct', 'c2', 'last_click', 1000, 15000, 1500),
        ('2026-11', 'P3', 'O3', 'L2', 'direct', 'c3', 'share_token', 1000, 9990, 999),
        ('2026-11', 'P3', 'O4', 'L1', 'direct', 'c4', 'share_token', 500, 2000, 100))
        t(period, promoter_id, order_id, line_id, role, click_event_id, attribution_reason, rate_e4, net_fen, entitled_fen)""")
    assert [(r.promoter_id, r.order_id, r.role, r.entitled_fen, r.previously_booked_fen, r.movement_fen)
            for r in ledger_mirror.movements(con, "2026-11")] == [
        ("P1", "O1", "direct", 0, 1000, -1000), ("P3", "O4", "direct", 100, 0, 100), ("P9", "O2", "override", 0, 300, -300)]
