"""Transfer results read back (rulebook §10): the whole file is checked before anything is
recorded; states apply in update_time order; final states never change; importing twice changes
nothing; any interleaving and repetition of the same lines gives the same registry state. A real
SQLite registry, batches released as the payout asset releases them (tests/releasing.py)."""

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from o2p import release
from o2p.config import load_config
from o2p.errors import InputError
from o2p.reconcile import parse_time, reconcile
from o2p.reference import Promoter
from o2p.registry import Registry
from tests.conftest import run_o2p
from tests.releasing import entitlement, release_period

PROMOTERS = {p: Promoter(p, None, "g", f"B{p}", f"o{p}", f"推客{p}", 0, None) for p in ("P1", "P2", "P3")}


@pytest.fixture
def world(tmp_path):
    cfg = load_config(None, home=tmp_path / "home")
    release_period(cfg, "2026-10", [entitlement("P1", "O1", 300_000), entitlement("P2", "O2", 150_000),
                                    entitlement("P3", "O3", 2_000)], PROMOTERS)
    bills = {b["promoter_id"]: b for b in Registry(cfg.registry).bills(period="2026-10").values()}
    return cfg, bills, tmp_path


def line(bill, state, when, **over):
    return json.dumps({"out_bill_no": bill["out_bill_no"], "state": state, "transfer_amount": bill["net_fen"],
                       "update_time": when, "openid": bill["openid"], "transfer_bill_no": "1330000071100999991182020050700019480001",
                       "mch_id": "1900001109", **over}, ensure_ascii=False)


def write(tmp_path, name, lines):
    p = tmp_path / name
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


def states(cfg):
    return {b["promoter_id"]: (b["state"], b["state_time"]) for b in Registry(cfg.registry).bills(period="2026-10").values()}


def test_states_apply_in_update_time_order_and_a_second_import_changes_nothing(world):
    cfg, bills, tmp = world
    f = write(tmp, "results.jsonl", [
        line(bills["P2"], "CANCELLED", "2026-11-04T09:00:00+08:00"),          # out of order in the file
        line(bills["P1"], "SUCCESS", "2026-11-02T10:00:00+08:00"),
        line(bills["P2"], "WAIT_USER_CONFIRM", "2026-11-01T10:00:00+08:00"),
        line(bills["P1"], "WAIT_USER_CONFIRM", "2026-11-01T10:00:00+08:00"),
        line(bills["P1"], "WAIT_USER_CONFIRM", "2026-11-01T10:00:00+08:00"),   # repeated in the file
    ])
    got = reconcile(cfg, f, "finance-zhou")
    assert (got["lines"], got["new"], got["changed"]) == (5, 4, 2)
    assert got["returned"] == [bills["P2"]["out_bill_no"]]
    assert states(cfg) == {"P1": ("SUCCESS", "2026-11-02T10:00:00+08:00"),
                           "P2": ("CANCELLED", "2026-11-04T09:00:00+08:00"), "P3": (None, None)}
    reg = Registry(cfg.registry)
    stored = reg.results([b["out_bill_no"] for b in bills.values()])
    assert len(stored) == 4 and {(r["file_sha256"], r["imported_by"]) for r in stored} == {(got["sha256"], "finance-zhou")}
    again = reconcile(cfg, f, "finance-zhou")
    assert (again["new"], again["changed"]) == (0, 0) and len(reg.results([b["out_bill_no"] for b in bills.values()])) == 4
    # an older state arriving after a newer one is kept, and changes nothing
    late = reconcile(cfg, write(tmp, "late.jsonl", [line(bills["P1"], "PROCESSING", "2026-11-01T11:00:00+08:00")]), "wu")
    assert (late["new"], late["changed"]) == (1, 0) and states(cfg)["P1"][0] == "SUCCESS"
    assert [a["action"] for a in reg.history()].count("reconcile") == 3


@pytest.mark.parametrize("bad, why", [
    ({"out_bill_no": "O2PNOSUCHBILL"}, "is not a bill of any released batch"),
    ({"transfer_amount": 1}, "transfer_amount 1 fen, released"),
    ({"openid": "o-someone-else"}, "openid o-someone-else, released to oP1"),
    ({"state": "DONE"}, "state 'DONE': not one of"),
    ({"update_time": "2026-11-03 10:00:00"}, "update_time '2026-11-03 10:00:00'"),
    ({"update_time": "2026-11-03T10:00:00"}, "not an RFC 3339 time"),
    ({"update_time": "2026-W45-4T10:00:00+08:00"}, "not an RFC 3339 time"),
    ({"transfer_amount": "291000"}, "not a whole number of fen"),
])
def test_a_bad_line_refuses_the_whole_file_and_records_nothing(world, bad, why):
    cfg, bills, tmp = world
    good = line(bills["P2"], "SUCCESS", "2026-11-02T10:00:00+08:00")
    over = dict(bad)
    f = write(tmp, "bad.jsonl", [good, line(bills["P1"], over.pop("state", "SUCCESS"), "2026-11-03T10:00:00+08:00", **over)])
    with pytest.raises(InputError, match="line 2: .*" + why.replace("(", r"\(").replace(".", r"\.")) as exc:
        reconcile(cfg, f, "zhou")
    assert "nothing recorded" in str(exc.value)
    assert states(cfg) == {"P1": (None, None), "P2": (None, None), "P3": (None, None)}
    assert Registry(cfg.registry).results([b["out_bill_no"] for b in bills.values()]) == []


def test_a_final_state_never_changes_not_even_across_files(world):
    cfg, bills, tmp = world
    reconcile(cfg, write(tmp, "a.jsonl", [line(bills["P1"], "SUCCESS", "2026-11-02T10:00:00+08:00")]), "zhou")
    f = write(tmp, "b.jsonl", ["", line(bills["P1"], "FAIL", "2026-11-05T10:00:00+08:00")])
    with pytest.raises(InputError, match=r"line 2: bill .* would leave the final state SUCCESS .* for FAIL"):
        reconcile(cfg, f, "zhou")
    for junk, why in (("{not json", "not JSON"), ("[1, 2]", "not a JSON object"), ('{"state": "SUCCESS"}', "missing")):
        with pytest.raises(InputError, match=f"line 1: {why}"):
            reconcile(cfg, write(tmp, "junk.jsonl", [junk]), "zhou")
    assert states(cfg)["P1"][0] == "SUCCESS"


def test_the_cli_refuses_a_bad_file_with_exit_2(world):
    cfg, bills, tmp = world
    f = write(tmp, "bad.jsonl", [line(bills["P1"], "SUCCESS", "2026-11-02T10:00:00+08:00", transfer_amount=7)])
    env = {"O2P_HOME": str(cfg.home_path), "O2P_USER": "zhou"}
    out = run_o2p("payouts", "reconcile", str(f), env=env, check=False)
    assert out.returncode == 2 and "nothing recorded" in out.stderr and "line 1" in out.stderr
    ok = write(tmp, "ok.jsonl", [line(bills["P1"], "FAIL", "2026-11-02T10:00:00+08:00", fail_reason="PAYEE_ACCOUNT_ABNORMAL")])
    assert "1 returned transfer(s)" in run_o2p("payouts", "reconcile", str(ok), env=env).stdout
    listed = run_o2p("payouts", "list", env=env).stdout
    row = next(ln for ln in listed.splitlines() if ln.startswith("2026-10"))
    # P1 returned (3000.00), P2 and P3 open (1500.00 + 20.00), nothing confirmed
    assert "0 / 0.00" in row and "1 / 3000.00" in row and "2 / 1520.00" in row, listed


# ---- any interleaving and repetition of the same lines gives the same state ----------------
TIMELINES = {   # per bill: a valid history, in time order (the last state is the bill's state)
    "P1": [("ACCEPTED", 1), ("WAIT_USER_CONFIRM", 2), ("SUCCESS", 5)],
    "P2": [("ACCEPTED", 1), ("WAIT_USER_CONFIRM", 3), ("CANCELING", 4), ("CANCELLED", 6)],
    "P3": [("PROCESSING", 2), ("FAIL", 3)],
}


def _when(n: int) -> str:
    return f"2026-11-0{n}T10:00:00+08:00"


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), files=st.integers(1, 4), repeats=st.integers(1, 3))
def test_any_interleaving_and_repetition_gives_the_same_registry_state(tmp_path_factory, seed, files, repeats):
    tmp = tmp_path_factory.mktemp("prop")
    cfg = load_config(None, home=tmp / "home")
    release_period(cfg, "2026-10", [entitlement("P1", "O1", 300_000), entitlement("P2", "O2", 150_000),
                                    entitlement("P3", "O3", 2_000)], PROMOTERS)
    bills = {b["promoter_id"]: b for b in Registry(cfg.registry).bills(period="2026-10").values()}
    rnd = random.Random(seed)
    lines = [line(bills[p], s, _when(t)) for p, tl in TIMELINES.items() for s, t in tl] * repeats
    rnd.shuffle(lines)
    chunks = [lines[i::files] for i in range(files)]
    for i, chunk in enumerate(chunks):
        if chunk:
            reconcile(cfg, write(tmp, f"f{i}.jsonl", chunk), "zhou")
    assert states(cfg) == {p: (tl[-1][0], _when(tl[-1][1])) for p, tl in TIMELINES.items()}
    reg = Registry(cfg.registry)
    assert len(reg.results([b["out_bill_no"] for b in bills.values()])) == sum(len(t) for t in TIMELINES.values())


def test_rfc3339_times_compare_across_offsets():
    assert parse_time("2026-11-02T10:00:00+08:00") == parse_time("2026-11-02T02:00:00Z")
    assert release.out_bill_no("b", "P1").startswith("O2P") and len(release.out_bill_no("b", "P1")) == 32


def test_simulated_results_reconcile_and_some_come_back(world):
    from o2p.reconcile import simulate_results

    cfg, bills, tmp = world
    lines = simulate_results(cfg, "2026-10", fail_share=1.0, seed=3)     # every bill fails or is cancelled
    got = reconcile(cfg, write(tmp, "sim.jsonl", lines), "demo")
    assert sorted(got["returned"]) == sorted(b["out_bill_no"] for b in bills.values())
    assert {s for s, _ in states(cfg).values()} <= {"FAIL", "CANCELLED"}
    ok = simulate_results(cfg, "2026-10", fail_share=0.0, seed=3)
    assert all(json.loads(x)["state"] in ("ACCEPTED", "WAIT_USER_CONFIRM", "SUCCESS") for x in ok)


@pytest.mark.parametrize("first", ["PROCESSING", "FAIL"])
def test_a_final_state_at_the_same_second_as_another_is_the_newer_one_in_any_order(world, first):
    """WeChat's update_time has seconds: PROCESSING and FAIL can share one. FAIL is the newer."""
    cfg, bills, tmp = world
    when = "2026-11-03T10:00:00+08:00"
    other = "FAIL" if first == "PROCESSING" else "PROCESSING"
    reconcile(cfg, write(tmp, "a.jsonl", [line(bills["P1"], first, when)]), "zhou")
    reconcile(cfg, write(tmp, "b.jsonl", [line(bills["P1"], other, when)]), "zhou")
    assert states(cfg)["P1"] == ("FAIL", when)


def test_two_imports_at_once_are_applied_one_after_the_other(world):
    import threading

    cfg, bills, tmp = world
    a = write(tmp, "a.jsonl", [line(bills["P1"], "ACCEPTED", "2026-11-03T10:00:00+08:00")])
    b = write(tmp, "b.jsonl", [line(bills["P1"], "FAIL", "2026-11-03T10:05:00+08:00")])
    errors = []

    def run(path):
        try:
            reconcile(cfg, path, "zhou")
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)
    threads = [threading.Thread(target=run, args=(p,)) for p in (a, b, a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert states(cfg)["P1"] == ("FAIL", "2026-11-03T10:05:00+08:00")
    assert len(Registry(cfg.registry).results([bills["P1"]["out_bill_no"]])) == 2
