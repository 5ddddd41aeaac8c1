"""Returned transfers (rulebook §10) fen for fen, under both tax rules, across a year boundary.

Promoter PA, tax cn_platform_cumulative (§7: cumulative income × 0.8 − 5000 CNY per consecutive
paid month, 3 % up to 36000 CNY of taxable income):
  2026-10  entitled 3000.00 CNY → paid gross 300000, taxable 240000 − 500000 < 0 → tax 0.
           Its bill FAILs (read back before the next release).
  2026-11  movement 600000 + returned 300000 (the October gross) = 900000 → paid.
           October was never income: no prior payout, paid months {11} → 1 month:
           taxable 900000 × 0.8 − 500000 = 220000 → 3 % = 6600. Net 893400.
           (Counting October would give 1200000 × 0.8 − 1000000 < 0 → 0: the wrong tax.)
Promoter PB: 2026-10 gross 150000 (tax 0: 120000 − 500000 < 0); its bill goes
  WAIT_USER_CONFIRM → CANCELLED; 2026-11 movement 0, returned 150000 → balance 150000 → paid again:
  prior payouts none (October returned), 1 month: 120000 − 500000 < 0 → tax 0.
Promoter PC: 2026-11 paid 2000 CNY... its bill FAILs after the November release; 2026-12 has
  nothing new for PC: returned 200000 comes back in December (not November, whose release came
  first) → paid 200000, tax: prior payouts of 2026: October? none for PC; November's returned
  bill is left out → 1 month {12}: 160000 − 500000 < 0 → 0.
Promoter PD crosses the year: 2026-12 gross 1000000 (taxable 800000 − 500000 = 300000 → 9000),
  bill FAILs; 2027-01: movement 0, returned 1000000 → paid 1000000 in the 2027 tax year, no prior
  payout in 2027 → taxable 300000 → 9000 again.

Under cn_labor_per_payment (§7: ≤ 4000 CNY: (X − 800) × 20 %; above: X × 0.8 × 20 %): the
returned bill's tax is void and nothing else changes — PA: October 300000 → (300000 − 80000)
× 0.2 = 44000; November 900000 → 900000 × 0.8 × 0.2 = 144000.
"""

import csv
import io
import json

import pytest

from o2p.config import load_config
from o2p.reconcile import reconcile
from o2p.reference import Promoter
from o2p.registry import Registry
from tests.releasing import entitlement, release_period

PROMOTERS = {p: Promoter(p, None, "g", f"B{p}", f"o{p}", f"推客{p}", 0, None) for p in ("PA", "PB", "PC", "PD")}


def _results(cfg, tmp_path, name, rows):
    reg = Registry(cfg.registry)
    lines = []
    for period, pid, state, when in rows:
        bill = next(b for b in reg.bills(period=period).values() if b["promoter_id"] == pid)
        lines.append(json.dumps({"out_bill_no": bill["out_bill_no"], "state": state, "transfer_amount": bill["net_fen"],
                                 "update_time": when, "openid": bill["openid"]}))
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    reconcile(cfg, path, "finance-zhou")


def _paid(folder):
    rows = csv.DictReader(io.StringIO((folder / "payout.csv").read_bytes().decode("utf-8-sig")))
    return {r["promoter_id"]: (r["gross_cny"], r["tax_cny"], r["net_cny"]) for r in rows}


@pytest.mark.parametrize("tax", ["cn_platform_cumulative", "cn_labor_per_payment"])
def test_returned_transfers_come_back_with_the_tax_rules_of_section_10(tmp_path, tax):
    cfg = load_config(None, home=tmp_path / "home")
    ents = {"PA": 300_000, "PB": 150_000}
    oct_ = release_period(cfg, "2026-10", [entitlement(p, f"O{p}1", e) for p, e in ents.items()], PROMOTERS,
                          tax_rule=tax)[0]
    if tax == "cn_platform_cumulative":
        assert _paid(oct_) == {"PA": ("3000.00", "0.00", "3000.00"), "PB": ("1500.00", "0.00", "1500.00")}
    else:   # ≤ 4000 CNY: (X − 800 CNY) × 20 %
        assert _paid(oct_) == {"PA": ("3000.00", "440.00", "2560.00"), "PB": ("1500.00", "140.00", "1360.00")}
    _results(cfg, tmp_path, "oct.jsonl", [("2026-10", "PA", "FAIL", "2026-11-03T10:00:00+08:00"),
                                          ("2026-10", "PB", "CANCELLED", "2026-11-05T10:00:00+08:00"),
                                          ("2026-10", "PB", "WAIT_USER_CONFIRM", "2026-11-01T10:00:00+08:00")])

    nov_ents = [entitlement("PA", "OPA1", 300_000), entitlement("PA", "OPA2", 600_000),
                entitlement("PB", "OPB1", 150_000), entitlement("PC", "OPC1", 200_000)]
    nov, s = release_period(cfg, "2026-11", nov_ents, PROMOTERS, tax_rule=tax)
    paid = _paid(nov)
    if tax == "cn_platform_cumulative":
        assert paid == {"PA": ("9000.00", "66.00", "8934.00"), "PB": ("1500.00", "0.00", "1500.00"),
                        "PC": ("2000.00", "0.00", "2000.00")}
    else:   # PA: 9000 CNY > 4000: 9000 × 0.8 × 20 % = 1440; PB as in October; PC (2000 − 800) × 20 % = 240
        assert paid == {"PA": ("9000.00", "1440.00", "7560.00"), "PB": ("1500.00", "140.00", "1360.00"),
                        "PC": ("2000.00", "240.00", "1760.00")}
    # each return is its own statement line, naming the original batch and bill
    rows = list(csv.DictReader(io.StringIO((nov / "statement.csv").read_bytes().decode("utf-8-sig"))))
    returned = [(r["promoter_id"], r["movement_cny"], r["note"]) for r in rows if r["role"] == "transfer_returned"]
    reg = Registry(cfg.registry)
    oct_bills = {b["promoter_id"]: b["out_bill_no"] for b in reg.bills(period="2026-10").values()}
    assert returned == [
        ("PA", "3000.00", f"transfer of 2026-10 returned (FAIL): batch 2026-10-t, out_bill_no {oct_bills['PA']}"),
        ("PB", "1500.00", f"transfer of 2026-10 returned (CANCELLED): batch 2026-10-t, out_bill_no {oct_bills['PB']}")]
    assert sum(r.movement_fen for r in s.statement if r.promoter_id == "PA") == 600_000   # booked/movement unchanged
    assert {b["promoter_id"]: b["applied_in"] for b in reg.bills(period="2026-10").values()} == {"PA": "2026-11", "PB": "2026-11"}

    # PC's November bill fails after November's release: December applies it
    _results(cfg, tmp_path, "nov.jsonl", [("2026-11", "PC", "FAIL", "2026-12-02T10:00:00+08:00")])
    dec, _ = release_period(cfg, "2026-12", nov_ents + [entitlement("PD", "OPD1", 1_000_000)], PROMOTERS, tax_rule=tax)
    if tax == "cn_platform_cumulative":
        # PD: 1000000 × 0.8 − 500000 = 300000 → 3 % = 9000
        assert _paid(dec) == {"PC": ("2000.00", "0.00", "2000.00"), "PD": ("10000.00", "90.00", "9910.00")}
    else:
        assert _paid(dec) == {"PC": ("2000.00", "240.00", "1760.00"), "PD": ("10000.00", "1600.00", "8400.00")}

    # PD's December bill fails: it comes back in January 2027, a new tax year
    _results(cfg, tmp_path, "dec.jsonl", [("2026-12", "PD", "FAIL", "2027-01-03T10:00:00+08:00")])
    jan, _ = release_period(cfg, "2027-01", nov_ents + [entitlement("PD", "OPD1", 1_000_000)], PROMOTERS, tax_rule=tax)
    if tax == "cn_platform_cumulative":
        assert _paid(jan) == {"PD": ("10000.00", "90.00", "9910.00")}
    else:
        assert _paid(jan) == {"PD": ("10000.00", "1600.00", "8400.00")}
    carried = list(csv.DictReader(io.StringIO((jan / "carried.csv").read_bytes().decode("utf-8-sig"))))
    assert carried == []


def test_a_return_below_the_threshold_is_carried_with_its_returned_amount(tmp_path):
    cfg = load_config(None, home=tmp_path / "home")
    release_period(cfg, "2026-10", [entitlement("PA", "O1", 1_500)], PROMOTERS, threshold_fen=1_000)
    _results(cfg, tmp_path, "r.jsonl", [("2026-10", "PA", "CANCELLED", "2026-11-03T10:00:00+08:00")])
    # November: PA's entitlement is clawed back by 1000 (a refund): balance = 0 + 1500 − 1000 = 500 < threshold
    nov, s = release_period(cfg, "2026-11", [entitlement("PA", "O1", 500)], PROMOTERS, threshold_fen=1_000)
    carried = list(csv.DictReader(io.StringIO((nov / "carried.csv").read_bytes().decode("utf-8-sig"))))
    assert [(r["promoter_id"], r["carried_in_cny"], r["returned_cny"], r["movement_cny"], r["balance_cny"], r["reason"])
            for r in carried] == [("PA", "0.00", "15.00", "-10.00", "5.00", "below_threshold")]


def test_the_statement_shows_each_return_and_where_it_was_applied(tmp_path):
    from o2p.reports import promoter_statement

    cfg = load_config(None, home=tmp_path / "home")
    release_period(cfg, "2026-10", [entitlement("PA", "O1", 300_000)], PROMOTERS)
    _results(cfg, tmp_path, "r.jsonl", [("2026-10", "PA", "FAIL", "2026-11-02T10:05:00+08:00")])
    release_period(cfg, "2026-11", [entitlement("PA", "O1", 300_000), entitlement("PA", "O2", 50_000)], PROMOTERS)
    bill = {b["period"]: b["out_bill_no"] for b in Registry(cfg.registry).bills().values()}
    text = promoter_statement(cfg, "PA")
    assert f"  transfer {bill['2026-10']}: FAIL at 2026-11-02T10:05:00+08:00; returned: applied in 2026-11" in text
    assert (f"  transfer of 2026-10 returned (FAIL): batch 2026-10-t, out_bill_no {bill['2026-10']}: 300000 back "
            "into the balance\n  balance: carried in 0 + returned 300000 + movement 50000 = 350000\n"
            "  paid: gross 3500.00 CNY − tax 0.00 = net 3500.00 CNY\n"
            f"  transfer {bill['2026-11']}: no result read back yet") in text


def test_a_return_recorded_during_a_release_stops_it_before_anything_is_recorded(tmp_path, monkeypatch):
    """Rulebook §10: a return recorded before the release of Q is applied in Q. One that lands
    between settlement and the registry's record makes the release stop: release again."""
    import tests.releasing as releasing
    from o2p.errors import O2PError

    cfg = load_config(None, home=tmp_path / "home")
    release_period(cfg, "2026-10", [entitlement("PA", "O1", 300_000), entitlement("PB", "O2", 5_000)], PROMOTERS)
    real_render = releasing.release.render

    def render_then_result_arrives(*a, **kw):
        files = real_render(*a, **kw)
        _results(cfg, tmp_path, "late.jsonl", [("2026-10", "PB", "FAIL", "2026-11-03T10:00:00+08:00")])
        return files
    monkeypatch.setattr(releasing.release, "render", render_then_result_arrives)
    with pytest.raises(O2PError, match="transfer results recorded during this release"):
        release_period(cfg, "2026-11", [entitlement("PA", "O1", 300_000), entitlement("PB", "O2", 5_000)], PROMOTERS)
    reg = Registry(cfg.registry)
    assert reg.batch("2026-11")["status"] == "releasing"        # the caller abandons the claim (the asset does)
    assert {b["promoter_id"]: b["applied_in"] for b in reg.bills(period="2026-10").values()} == {"PA": None, "PB": None}
