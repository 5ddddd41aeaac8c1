"""Golden months of the finance loop (rulebook §10) through the real pipeline: events landed by
the capture sink, Spark attribution, dbt commission, settlement, the GX gates and the release;
then WeChat Pay's transfer results read back with `o2p payouts reconcile`, and the next release
paying what came back — across a year boundary, under both tax rules. Every fen by hand:

Rates: R0 0.10 on everything; threshold 1000 fen; no uplines (no override).

2025-11: OA1 PA 3 000 000 → 300 000;  OC1 PC 1 500 000 → 150 000;  OD1 PD 2 000 000 → 200 000
         (each confirmed the next day, eligible 7 days later: November).
   cumulative (month 11, nothing before): taxable = gross × 0.8 − 500 000 < 0 for all → tax 0.
   per payment (≤ 4000 CNY: (X − 80 000) × 20 %): PA 44 000, PC 14 000, PD 24 000.
   Results read back (one file, lines out of order): PA FAIL; PC WAIT_USER_CONFIRM then
   CANCELLED; PD ACCEPTED only (open).
2025-12: OA2 PA 6 000 000 → 600 000.
   PA: movement 600 000 + returned 300 000 (November's gross) = 900 000 → paid.
   PC: movement 0 + returned 150 000 = 150 000 → paid again.      PD: nothing (its bill is open).
   cumulative: November was never income (returned): PA months {12} → 900 000 × 0.8 − 500 000
   = 220 000 → 3 % = 6 600;  PC 120 000 − 500 000 < 0 → 0.
   per payment: PA 900 000 > 400 000 → 900 000 × 0.8 × 20 % = 144 000; PC 14 000.
   Results: PA's December bill SUCCESS, PC's SUCCESS; PD's November bill, open a month, FAILs.
2026-01: OD2 PD 1 000 000 → 100 000.   PD: movement 100 000 + returned 200 000 = 300 000 → paid.
   cumulative, a new tax year, nothing before: 240 000 − 500 000 < 0 → 0.
   per payment: (300 000 − 80 000) × 20 % = 44 000.
"""

import csv
import io
import json

import pytest

from o2p.config import load_config
from o2p.money import fen_to_cny
from tests.inprocess import o2p_here
from tests.integration.test_golden import bought, land, pipeline

pytestmark = pytest.mark.integration

PROMOTERS = """promoter_id,upline_id,tier,buyer_id,payee_openid,payee_name,joined_at,suspended_at
PA,,gold,BA,oA,推客甲,2025-01-01T00:00:00+08:00,
PC,,silver,BC,oC,推客丙,2025-01-01T00:00:00+08:00,
PD,,silver,BD,oD,推客丁,2025-01-01T00:00:00+08:00,
"""
PRODUCTS = "sku_id,product_id,brand,category\nSKU1,PR1,X,beauty\n"
RULES = "rule_id,scope,scope_value,rate,effective_from,effective_to\nR0,default,,0.1000,2025-01-01T00:00:00+08:00,\n"

NOVEMBER = [*bought("OA1", "2025-11-03", "PA", "UA1", 3_000_000, confirmed="2025-11-04T10:00:00+08:00"),
            *bought("OC1", "2025-11-05", "PC", "UC1", 1_500_000, confirmed="2025-11-06T10:00:00+08:00"),
            *bought("OD1", "2025-11-06", "PD", "UD1", 2_000_000, confirmed="2025-11-07T10:00:00+08:00")]
DECEMBER = [*bought("OA2", "2025-12-02", "PA", "UA2", 6_000_000, confirmed="2025-12-03T10:00:00+08:00")]
JANUARY = [*bought("OD2", "2026-01-05", "PD", "UD2", 1_000_000, confirmed="2026-01-06T10:00:00+08:00")]

PAID = {   # (gross, tax) fen per tax rule
    "cn_platform_cumulative": {
        "2025-11": {"PA": (300_000, 0), "PC": (150_000, 0), "PD": (200_000, 0)},
        "2025-12": {"PA": (900_000, 6_600), "PC": (150_000, 0)},
        "2026-01": {"PD": (300_000, 0)},
    },
    "cn_labor_per_payment": {
        "2025-11": {"PA": (300_000, 44_000), "PC": (150_000, 14_000), "PD": (200_000, 24_000)},
        "2025-12": {"PA": (900_000, 144_000), "PC": (150_000, 14_000)},
        "2026-01": {"PD": (300_000, 44_000)},
    },
}


def _csv(path):
    return list(csv.DictReader(io.StringIO(path.read_bytes().decode("utf-8-sig"))))


def _fen(cny):
    whole, cents = cny.split(".")
    return int(whole) * 100 + int(cents)


def _results(cfg, tmp_path, name, rows) -> str:
    """A results file as WeChat Pay's query API answers, for bills of released periods."""
    from o2p.registry import Registry

    bills = {(b["period"], b["promoter_id"]): b for b in Registry(cfg.registry).bills().values()}
    lines = [json.dumps({"out_bill_no": bills[(p, who)]["out_bill_no"], "state": state,
                         "transfer_amount": bills[(p, who)]["net_fen"], "update_time": when,
                         "openid": bills[(p, who)]["openid"], "mch_id": "1900000109"}) for p, who, state, when in rows]
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("tax", ["cn_platform_cumulative", "cn_labor_per_payment"])
def test_returned_transfers_are_paid_again_across_a_year_exact_to_the_fen(tmp_path, spark_cfg, tax):
    ref = tmp_path / "reference"
    ref.mkdir()
    (ref / "promoters.csv").write_text(PROMOTERS, encoding="utf-8")
    (ref / "products.csv").write_text(PRODUCTS, encoding="utf-8")
    (ref / "commission_rules.csv").write_text(RULES, encoding="utf-8")
    cfg_file = tmp_path / "o2p.yaml"
    # one of the two runs under approval (rulebook §10): a second person approves each batch
    # released by the real pipeline before its transfers exist; the money is the same
    approval = tax == "cn_labor_per_payment"
    cfg_file.write_text(f'reference_dir: "{ref}"\ntax: {tax}\nquality:\n  max_event_age_days: 36500\n'
                        'spark:\n  conf:\n    spark.sql.shuffle.partitions: "2"\n'
                        f'payout:\n  require_approval: {str(approval).lower()}\n')
    cfg = load_config(cfg_file, home=tmp_path / "home")
    env = {"O2P_CONFIG": str(cfg_file), "O2P_HOME": str(cfg.home_path), "O2P_USER": "finance-zhou"}
    folders = {}
    for period, events, results in (
        ("2025-11", NOVEMBER, [("2025-11", "PC", "CANCELLED", "2025-12-03T10:00:00+08:00"),   # out of order
                               ("2025-11", "PA", "FAIL", "2025-12-01T11:00:00+08:00"),
                               ("2025-11", "PC", "WAIT_USER_CONFIRM", "2025-12-01T10:00:00+08:00"),
                               ("2025-11", "PD", "ACCEPTED", "2025-12-01T10:00:00+08:00")]),
        ("2025-12", DECEMBER, [("2025-12", "PA", "SUCCESS", "2026-01-01T12:00:00+08:00"),
                               ("2025-12", "PC", "SUCCESS", "2026-01-01T12:00:00+08:00"),
                               ("2025-11", "PD", "FAIL", "2026-01-02T10:00:00+08:00")]),
        ("2026-01", JANUARY, []),
    ):
        land(cfg, events)
        folder = pipeline(cfg, period)
        folders[period] = folder
        got = {r["promoter_id"]: (_fen(r["gross_cny"]), _fen(r["tax_cny"])) for r in _csv(folder / "payout.csv")}
        assert got == PAID[tax][period], period
        transfers = folder / "wechat_transfer.json"
        if approval:
            assert not transfers.exists()
            approved = o2p_here("--as", "finance-li", "payouts", "approve", "--period", period, env=env).stdout
            assert approved.strip() == str(transfers)
        assert sorted((t["transfer_amount"], t["openid"]) for t in json.loads(transfers.read_text())) == sorted(
            (g - t, "o" + p[1:]) for p, (g, t) in got.items())
        if results:
            out = o2p_here("payouts", "reconcile", _results(cfg, tmp_path, f"{period}.jsonl", results), env=env).stdout
            assert f"{len(results)} new" in out

    # each return is its own statement line of the release that applied it
    def returns(period):
        return sorted((r["promoter_id"], r["movement_cny"], r["note"].split(":")[0])
                      for r in _csv(folders[period] / "statement.csv") if r["role"] == "transfer_returned")
    assert returns("2025-12") == [("PA", "3000.00", "transfer of 2025-11 returned (FAIL)"),
                                  ("PC", "1500.00", "transfer of 2025-11 returned (CANCELLED)")]
    assert returns("2026-01") == [("PD", "2000.00", "transfer of 2025-11 returned (FAIL)")]
    # the returned batch stays as it was released, and verifies
    for folder in folders.values():
        verified = o2p_here("payouts", "verify", str(folder), env=env).stdout
        assert "OK" in verified and (not approval or "approved by finance-li" in verified), verified
    listed = {ln.split()[0]: ln for ln in o2p_here("payouts", "list", env=env).stdout.splitlines() if ln[:2] == "20"}
    net_nov = {p: g - t for p, (g, t) in PAID[tax]["2025-11"].items()}
    assert "0 / 0.00" in listed["2025-11"]                                    # nothing confirmed
    assert f"3 / {fen_to_cny(sum(net_nov.values()))}" in listed["2025-11"]    # all three returned
    statement = o2p_here("payouts", "statement", "--promoter", "PD", env=env).stdout
    assert "returned: applied in 2026-01" in statement and "returned 200000" in statement
