"""Golden months: three periods released in order through the real pipeline (landing code of
capture, Spark attribution, dbt commission, settlement, GX gates, the release), every amount
computed by hand from the rulebook in the comments below.

Events are landed with the capture sink (the file side of `o2p capture`; the broker path has its
own tests), month by month, as they would have been captured: August's events before August is
released, September's before September, and so on. One August order is captured only in October.
The same world runs under three configs: last click with the cumulative tax, the WeChat lock
with the per-payment tax, and last click with no tax. (The months are in the past because a
period can only be released once it has ended.)

The world (rates: default rule R0 0.10; R1 0.05 on SKU2 from 2026-09-01T00:00+08:00, so never
for an order paid before then; override 0.02 to the upline; threshold 1000 fen):

  promoter  upline  payee  notes
  PA        -       yes
  PB        PA      yes
  PC        -       yes    999 fen in August: below the threshold
  PD        -       yes    1000 fen in August: paid
  PE        -       no     no payee: always carried
  PS        -       yes    suspended_at 2026-09-15T00:00+08:00
  PN        -       yes    missing from promoters.csv until September
  PBIG, PT  -       yes    large amounts for the tax brackets

Every order follows a click of its buyer an hour (or less) before it, so the two models agree
except on OX1, whose buyer clicked PA and then, inside PA's 5-day lock, PB.

August (end = 2026-09-01T00:00+08:00; eligible = confirmed + 7 d, confirmed = min(event, paid + 10 d)):
  OA1  PA  12345 × 0.10 = 1234.5 → 1235 (half up)          confirmed 08-02 → eligible 08-09
  OB1  PB  25 × 0.10 = 2.5 → 3;  PA override 25 × 0.02 = 0.5 → 1
  OB2  PB  20000 − refund 5000 on 08-08 (before eligibility) = 15000 → 1500; PA 300
  OB3  PB  30000 → 3000; PA 600                              confirmed 08-04 → eligible 08-11
  OX1  last click: PB 1000, PA 200;  lock: PA 1000 (PB's click attributes nothing while PA holds)
  OA3  PA  10000 → 1000: paid 08-14T23:30+08, auto-confirmed 08-24T23:30, eligible 08-31T23:30+08
       (15:30Z): August.   OA4, paid 40 minutes later (08-15T00:10+08), is eligible
       09-01T00:10+08 = 08-31T16:10Z: September in Shanghai, though still August in UTC.
  OC1  PC  9990 → 999          OD1  PD 10000 → 1000          OE1  PE 20000 → 2000
  ON1  PN  15000: PN unknown in August → earns nothing yet (the order stays attributed)
  OBIG1 PBIG 51 250 000 → 5 125 000      OT1 PT 4 000 000 → 400 000
  OD2  PD  paid 08-31T23:30+08 (written 15:30Z) on SKU2: R1 is not in force yet → 0.10 → 1000,
       eligible 09-17: September.     OS1 PS 20000 → 2000, paid 08-20, eligible 09-06: September.
  Balances: PA 1235+1+300+600+200+1000 = 3336 (lock: 1235+1+300+600+1000+1000 = 4136)
            PB 3+1500+3000+1000 = 5503 (lock: 4503); PBIG 5 125 000; PD 1000; PT 400 000 → paid
            PC 999 below_threshold; PE 2000 no_payee → carried.
September (promoters.csv now names PN):
  OB3 refunded in full on 09-05, after it was paid: PB entitled 0, booked 3000 → −3000; PA −600
  OA4 PA +1000; OD2 PD +1000; OS1 PS +2000 (paid before the suspension);
  OS2 PS paid 09-16, after suspended_at → 0; ON1 PN +1500; OBIG2 PBIG +1 250 000; OT2 PT +80 000
  Balances: PA −600+1000 = 400 below_threshold; PB −3000 negative; PC 999 below_threshold;
            PE 2000 no_payee; PS 2000 suspended (suspended_at < end(Sep)) → carried;
            PBIG 1 250 000, PD 1000, PN 1500, PT 80 000 → paid.
October (also captured now: OC2, an August order of PC, eligible 09-11):
  OC2 PC +1000 → 999 + 1000 = 1999 paid.  OB4 PB 50000 → 5000, PA 1000.
  PB −3000 + 5000 = 2000 paid (the negative balance recovered); PA 400 + 1000 = 1400 paid;
  PE 2000 no_payee, PS 2000 suspended carried.

Tax (fen):
  cn_platform_cumulative — PBIG August: 5 125 000 × 0.8 − 500 000 = 3 600 000 = 36 000 CNY,
    exactly the top of the 3 % bracket → 108 000. September: (6 375 000 × 0.8 − 2 × 500 000) =
    4 100 000 → × 10 % − 252 000 = 158 000, minus 108 000 withheld → 50 000.
    PT: 400 000 × 0.8 − 500 000 < 0 → 0; then 480 000 × 0.8 − 1 000 000 < 0 → 0. Others 0.
  cn_labor_per_payment — PBIG August: taxable 5 125 000 × 0.8 = 4 100 000 (≤ 5 000 000) →
    × 30 % − 200 000 = 1 030 000. September: 1 250 000 × 0.8 = 1 000 000 → × 20 % = 200 000.
    PT August 400 000 (the 400 000 edge: taxable = X − 80 000 = 320 000) → 64 000;
    PT September 80 000 (the 80 000 edge) → 0. Everyone else is paid ≤ 80 000 → 0.
  none — 0.
"""

import csv
import io
import json
from decimal import Decimal
from pathlib import Path

import pytest

from o2p.config import load_config
from o2p.errors import InputError

pytestmark = pytest.mark.integration

PROMOTERS_HEAD = "promoter_id,upline_id,tier,buyer_id,payee_openid,payee_name,joined_at,suspended_at\n"
PROMOTERS = {
    "PA": "PA,,gold,BA,oA,推客甲,2026-01-01T00:00:00+08:00,",
    "PB": "PB,PA,silver,BB,oB,推客乙,2026-01-01T00:00:00+08:00,",
    "PBIG": "PBIG,,gold,BG,oBIG,大推客,2026-01-01T00:00:00+08:00,",
    "PC": "PC,,silver,BC,oC,推客丙,2026-01-01T00:00:00+08:00,",
    "PD": "PD,,silver,BD,oD,推客丁,2026-01-01T00:00:00+08:00,",
    "PE": "PE,,silver,BE,,推客戊,2026-01-01T00:00:00+08:00,",
    "PN": "PN,,silver,BN,oN,新推客,2026-08-20T00:00:00+08:00,",
    "PS": "PS,,silver,BS,oS,推客己,2026-01-01T00:00:00+08:00,2026-09-15T00:00:00+08:00",
    "PT": "PT,,gold,BT,oT,推客庚,2026-01-01T00:00:00+08:00,",
}
PRODUCTS = "sku_id,product_id,brand,category\nSKU1,PR1,X,beauty\nSKU2,PR2,Y,food\n"
RULES = """rule_id,scope,scope_value,rate,effective_from,effective_to
R0,default,,0.1000,2025-01-01T00:00:00+08:00,
R1,sku,SKU2,0.0500,2026-09-01T00:00:00+08:00,
"""


def _ev(eid, etype, at, **kw):
    return {"event_id": eid, "event_type": etype, "occurred_at": at, "source": "storefront",
            "schema_version": 1, **kw}


def click(eid, at, promoter, buyer):
    return _ev(eid, "click", at, promoter_id=promoter, share_id=f"S-{promoter}-{buyer}", buyer_id=buyer,
               device_id=f"D-{buyer}", sku_id="SKU1", channel="group", user_agent="Mozilla/5.0 MicroMessenger")


def order(eid, at, oid, buyer, paid, sku="SKU1", share=None):
    return _ev(eid, "order_paid", at, order_id=oid, buyer_id=buyer, share_id=share, currency="CNY",
               lines=[{"line_id": "L1", "sku_id": sku, "quantity": 1, "unit_price_fen": paid,
                       "discount_fen": 0, "paid_fen": paid}])


def confirm(eid, at, oid):
    return _ev(eid, "order_confirmed", at, order_id=oid)


def refund(eid, at, rid, oid, amount):
    return _ev(eid, "refund", at, refund_id=rid, order_id=oid, line_id="L1", amount_fen=amount)


def bought(n, day, promoter, buyer, paid, *, at="10:00:00+08:00", clicked="09:00:00+08:00", confirmed=None, **kw):
    """A click of `promoter` by `buyer`, then the buyer's order (and its confirmation)."""
    evs = [click(f"c-{n}", f"{day}T{clicked}", promoter, buyer),
           order(f"o-{n}", f"{day}T{at}", n, buyer, paid, **kw)]
    if confirmed:
        evs.append(confirm(f"k-{n}", confirmed, n))
    return evs


AUGUST = [
    *bought("OA1", "2026-08-01", "PA", "UA1", 12345, clicked="11:00:00+08:00", at="12:00:00+08:00",
            confirmed="2026-08-02T10:00:00+08:00"),
    *bought("OB1", "2026-08-02", "PB", "UB1", 25, confirmed="2026-08-03T10:00:00+08:00", share="S-PB-UB1"),
    *bought("OB2", "2026-08-05", "PB", "UB2", 20000),
    refund("r-OB2", "2026-08-08T00:00:00+08:00", "RF-OB2", "OB2", 5000),
    *bought("OB3", "2026-08-03", "PB", "UB3", 30000, confirmed="2026-08-04T10:00:00+08:00"),
    click("c-OX1-a", "2026-08-01T10:00:00+08:00", "PA", "UX"),
    click("c-OX1-b", "2026-08-02T10:00:00+08:00", "PB", "UX"),
    order("o-OX1", "2026-08-03T10:00:00+08:00", "OX1", "UX", 10000),
    confirm("k-OX1", "2026-08-04T10:00:00+08:00", "OX1"),
    *bought("OA3", "2026-08-14", "PA", "UA3", 10000, clicked="23:00:00+08:00", at="23:30:00+08:00"),
    click("c-OA4", "2026-08-15T00:05:00+08:00", "PA", "UA4"),
    order("o-OA4", "2026-08-15T00:10:00+08:00", "OA4", "UA4", 10000),
    *bought("OC1", "2026-08-02", "PC", "UC1", 9990, confirmed="2026-08-02T12:00:00+08:00"),
    *bought("OD1", "2026-08-03", "PD", "UD1", 10000, confirmed="2026-08-03T20:00:00+08:00"),
    *bought("OE1", "2026-08-06", "PE", "UE1", 20000, confirmed="2026-08-07T10:00:00+08:00"),
    *bought("ON1", "2026-08-07", "PN", "UN1", 15000, confirmed="2026-08-08T10:00:00+08:00"),
    *bought("OBIG1", "2026-08-10", "PBIG", "UG1", 51_250_000, confirmed="2026-08-11T10:00:00+08:00"),
    *bought("OT1", "2026-08-08", "PT", "UT1", 4_000_000, confirmed="2026-08-09T10:00:00+08:00"),
    click("c-OD2", "2026-08-31T23:00:00+08:00", "PD", "UD2"),
    order("o-OD2", "2026-08-31T15:30:00Z", "OD2", "UD2", 10000, sku="SKU2"),
    *bought("OS1", "2026-08-20", "PS", "US1", 20000),
    # Reported, not paid: a second order_paid of OB1 under a new event id (the earliest counts),
    # an organic order refunded 3000 + 3000 on 5000 paid, and a refund of an order never captured.
    order("o-OB1-dup", "2026-08-02T10:05:00+08:00", "OB1", "UB1", 99999),
    order("o-OZ1", "2026-08-02T10:00:00+08:00", "OZ1", "UZ", 5000),
    refund("r-OZ1-a", "2026-08-03T10:00:00+08:00", "RF-OZ1-a", "OZ1", 3000),
    refund("r-OZ1-b", "2026-08-04T10:00:00+08:00", "RF-OZ1-b", "OZ1", 3000),
    refund("r-GHOST", "2026-08-10T10:00:00+08:00", "RF-GHOST", "OGHOST", 100),
]
ANOMALIES_AUGUST = [
    ("duplicate_order_paid", "OB1", None, None, None, "counted once: event o-OB1 paid it first"),
    ("held_refund", "OGHOST", "L1", None, 100, "order not captured yet"),
    ("over_refund", "OZ1", "L1", None, 1000, "refunded 6000 fen of 5000 paid"),
    ("unknown_promoter", "ON1", "L1", "PN", 1500, "direct commission withheld until promoters.csv names PN"),
]
SEPTEMBER = [
    refund("r-OB3", "2026-09-05T10:00:00+08:00", "RF-OB3", "OB3", 30000),
    *bought("OS2", "2026-09-16", "PS", "US2", 20000, confirmed="2026-09-17T10:00:00+08:00"),
    *bought("OBIG2", "2026-09-02", "PBIG", "UG2", 12_500_000, confirmed="2026-09-03T10:00:00+08:00"),
    *bought("OT2", "2026-09-08", "PT", "UT2", 800_000, confirmed="2026-09-09T10:00:00+08:00"),
]
OCTOBER = [
    *bought("OC2", "2026-08-25", "PC", "UC2", 10000),            # an August order, captured late
    *bought("OB4", "2026-10-01", "PB", "UB4", 50000, confirmed="2026-10-02T10:00:00+08:00"),
]

GROSS = {
    "2026-08": {"PA": 3336, "PB": 5503, "PBIG": 5_125_000, "PD": 1000, "PT": 400_000},
    "2026-09": {"PBIG": 1_250_000, "PD": 1000, "PN": 1500, "PT": 80_000},
    "2026-10": {"PA": 1400, "PB": 2000, "PC": 1999},
}
LOCK_AUGUST = {"PA": 4136, "PB": 4503}
TAX = {
    "cn_platform_cumulative": {("2026-08", "PBIG"): 108_000, ("2026-09", "PBIG"): 50_000},
    "cn_labor_per_payment": {("2026-08", "PBIG"): 1_030_000, ("2026-09", "PBIG"): 200_000,
                             ("2026-08", "PT"): 64_000},
    "none": {},
}
CARRIED = {
    "2026-08": [("PC", 999, "below_threshold"), ("PE", 2000, "no_payee")],
    "2026-09": [("PA", 400, "below_threshold"), ("PB", -3000, "negative"), ("PC", 999, "below_threshold"),
                ("PE", 2000, "no_payee"), ("PS", 2000, "suspended")],
    "2026-10": [("PE", 2000, "no_payee"), ("PS", 2000, "suspended")],
}


def land(cfg, events) -> None:
    """Land events with the capture sink, as `o2p capture` would (one partition per topic)."""
    from streaming.capture.sink import Rec, Sink

    topic_of = {"click": cfg.kafka.topics.clicks, "refund": cfg.kafka.topics.refunds}
    by_topic: dict[str, list[dict]] = {}
    for e in events:
        by_topic.setdefault(topic_of.get(e["event_type"], cfg.kafka.topics.orders), []).append(e)
    sink = Sink(cfg)
    try:
        for topic, evs in by_topic.items():
            nxt, _ = sink.assign(topic, 0)
            nxt = nxt or 0
            recs = [Rec(nxt + i, None, json.dumps(e, ensure_ascii=False).encode(), 0) for i, e in enumerate(evs)]
            assert sink.land(topic, 0, recs)["stats"].dead_lettered == 0
    finally:
        sink.close()


def write_reference(ref: Path, promoters: list[str]) -> None:
    ref.mkdir(exist_ok=True)
    (ref / "promoters.csv").write_text(PROMOTERS_HEAD + "".join(PROMOTERS[p] + "\n" for p in promoters), encoding="utf-8")
    (ref / "products.csv").write_text(PRODUCTS, encoding="utf-8")
    (ref / "commission_rules.csv").write_text(RULES, encoding="utf-8")


def pipeline(cfg, period):
    """`o2p run` (attribution over every landed day) then `o2p payouts release --period`."""
    from o2p.cli import _landed_days, release_period
    from pipelines.execute import execute as _execute

    days = _landed_days(cfg)
    _execute(cfg, "reference_job")
    _execute(cfg, "attribution_job", partition_range=(days[0], days[-1]))
    return release_period(cfg, period)


_ATTRIBUTED_AUGUST: dict[str, Path] = {}


def attributed_august(tmp_path_factory) -> Path:
    """A folder with `o2p.yaml` (last click, the default tax), `reference/` (every promoter but
    PN) and `home/`, where August is landed and attributed (reference and attribution jobs, as
    `pipeline` does before the release). Built once per test session: copy its home, never
    write into it (tests/integration/test_gates.py, `test_two_releases_…` below)."""
    from o2p.cli import _landed_days
    from pipelines.execute import execute as _execute

    key = str(tmp_path_factory.getbasetemp())
    if key not in _ATTRIBUTED_AUGUST:
        base = tmp_path_factory.mktemp("attributed_august")
        write_reference(base / "reference", [p for p in PROMOTERS if p != "PN"])
        (base / "o2p.yaml").write_text(
            f'reference_dir: "{base / "reference"}"\nquality:\n  max_event_age_days: 36500\n'
            'spark:\n  conf:\n    spark.sql.shuffle.partitions: "2"\n')
        cfg = load_config(base / "o2p.yaml", home=base / "home")
        land(cfg, AUGUST)
        days = _landed_days(cfg)
        _execute(cfg, "reference_job")
        _execute(cfg, "attribution_job", partition_range=(days[0], days[-1]))
        _ATTRIBUTED_AUGUST[key] = base
    return _ATTRIBUTED_AUGUST[key]


from o2p.release import read_people_csv  # noqa: E402 - beside the reader of payout.csv


def read_csv(path: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_bytes().decode("utf-8-sig"))))


def fen(cny: str) -> int:
    return int(Decimal(cny) * 100)


@pytest.mark.parametrize("model,tax,registry", [
    ("last_click", "cn_platform_cumulative", "sqlite"),
    ("last_click", "cn_platform_cumulative", "postgresql"),
    ("wechat_lock", "cn_labor_per_payment", "sqlite"),
    ("last_click", "none", "sqlite"),
])
def test_three_months_exact_to_the_fen(request, tmp_path, spark_cfg, model, tax, registry):
    ref = tmp_path / "reference"
    cfg_file = tmp_path / "o2p.yaml"
    registry_url = ""
    if registry == "postgresql":
        registry_url = f'registry_url: "{request.getfixturevalue("postgres").database("golden")}"\n'
    cfg_file.write_text(
        f'reference_dir: "{ref}"\nattribution:\n  model: {model}\ntax: {tax}\n{registry_url}'
        'quality:\n  max_event_age_days: 36500\n'   # August 2026 is "captured" whenever the test runs
        'spark:\n  conf:\n    spark.sql.shuffle.partitions: "2"\n')
    cfg = load_config(cfg_file, home=tmp_path / "home")
    all_but_pn = [p for p in PROMOTERS if p != "PN"]
    write_reference(ref, all_but_pn)

    land(cfg, AUGUST)
    from o2p.cli import release_period
    with pytest.raises(InputError, match="release 2026-08 first"):
        release_period(cfg, "2026-09")            # September before August is refused

    folders = {}
    for period, events, promoters in (("2026-08", [], all_but_pn),
                                      ("2026-09", SEPTEMBER, list(PROMOTERS)),
                                      ("2026-10", OCTOBER, list(PROMOTERS))):
        write_reference(ref, promoters)
        land(cfg, events)
        folder = pipeline(cfg, period)
        folders[period] = folder

        gross = dict(GROSS[period])
        if model == "wechat_lock" and period == "2026-08":
            gross.update(LOCK_AUGUST)
        want = [(p, g, TAX[tax].get((period, p), 0)) for p, g in sorted(gross.items())]
        rows = read_csv(folder / "payout.csv")
        got = [(r["promoter_id"], fen(r["gross_cny"]), fen(r["tax_cny"])) for r in rows]
        assert got == want, period
        assert all(fen(r["net_cny"]) == fen(r["gross_cny"]) - fen(r["tax_cny"]) for r in rows)
        carried = [(r["promoter_id"], r["balance_fen"], r["reason"]) for r in read_people_csv(folder / "carried.csv")]
        assert carried == CARRIED[period], period
        man = json.loads((folder / "manifest.json").read_text())
        assert man["totals_fen"] == {"gross": sum(gross.values()), "tax": sum(t for *_, t in want),
                                     "net": sum(gross.values()) - sum(t for *_, t in want)}
        assert man["attribution_model"] == model and man["tax_rule"] == tax
        if period == "2026-08":
            from o2p.reports import anomalies
            got_anomalies = [(a["kind"], a["order_id"], a["line_id"], a["promoter_id"], a["amount_fen"], a["detail"])
                             for a in anomalies(cfg, period)]
            assert got_anomalies == ANOMALIES_AUGUST

    statement = {period: {(r["promoter_id"], r["order_id"], r["role"]): r for r in read_people_csv(f / "statement.csv")}
                 for period, f in folders.items()}
    oa1 = statement["2026-08"][("PA", "OA1", "direct")]
    assert (oa1["rate"], oa1["net_fen"], oa1["entitled_fen"]) == ("0.1000", 12345, 1235)
    assert statement["2026-08"][("PA", "OB1", "override")]["entitled_fen"] == 1       # 0.5 → 1
    assert ("PN", "ON1", "direct") not in statement["2026-08"]                        # unknown in August
    assert statement["2026-09"][("PN", "ON1", "direct")]["movement_fen"] == 1500    # named in September
    ob3 = statement["2026-09"][("PB", "OB3", "direct")]
    assert (ob3["entitled_fen"], ob3["previously_booked_fen"], ob3["movement_fen"]) == (0, 3000, -3000)
    assert statement["2026-09"][("PD", "OD2", "direct")]["rate"] == "0.1000"           # R1 not yet in force
    assert ("PS", "OS2", "direct") not in statement["2026-09"]                        # after the suspension
    assert ("PA", "OA4", "direct") not in statement["2026-08"] and ("PA", "OA4", "direct") in statement["2026-09"]
    assert statement["2026-10"][("PC", "OC2", "direct")]["movement_fen"] == 1000    # late August order
    ox1 = statement["2026-08"][("PA" if model == "wechat_lock" else "PB", "OX1", "direct")]
    assert ox1["attribution_reason"] == ("lock" if model == "wechat_lock" else "last_click")

    from o2p.reports import promoter_statement
    text = promoter_statement(cfg, "PB")
    reason = "lock" if model == "wechat_lock" else "last_click"
    assert (f"  order OB3 line L1 direct: {reason} via click c-OB3 at 2026-08-03T09:00:00+08:00 by buyer UB3 "
            "in group, share S-PB-UB3 of PB\n"
            "      rate 0.1000 × net 0 = entitled 0; booked before 3000 → movement -3000\n"
            f"      why this promoter: c-OB3 (PB) won by {reason}\n"
            "  balance: carried in 0 + movement -3000 = -3000\n"
            "  not paid: -3000 carried to the next period (negative)") in text
    assert "  balance: carried in -3000 + movement 5000 = 2000\n  paid: gross 20.00 CNY − tax 0.00 = net 20.00 CNY" in text

    transfers = json.loads((folders["2026-08"] / "wechat_transfer.json").read_text())
    big = next(t for t in transfers if t["openid"] == "oBIG")
    assert big["transfer_amount"] == 5_125_000 - TAX[tax].get(("2026-08", "PBIG"), 0) and big["user_name"] == "大推客"
    assert "user_name" not in next(t for t in transfers if t["openid"] == "oD")

    # Released periods are immutable: releasing August again returns the same bytes.
    before = {f.name: f.read_bytes() for f in folders["2026-08"].iterdir()}
    assert release_period(cfg, "2026-08") == folders["2026-08"]
    assert {f.name: f.read_bytes() for f in folders["2026-08"].iterdir()} == before


def test_two_releases_started_at_once_give_one_batch_and_one_refusal(tmp_path, tmp_path_factory, spark_cfg):
    import os
    import shutil
    import subprocess
    import sys

    from tests.conftest import REPO, run_o2p

    # August landed and attributed (once per session, shared with test_gates): a copy of its home
    base = attributed_august(tmp_path_factory)
    cfg_file = base / "o2p.yaml"
    shutil.copytree(base / "home", tmp_path / "home")
    cfg = load_config(cfg_file, home=tmp_path / "home")

    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env.update(O2P_CONFIG=str(cfg_file), O2P_HOME=str(cfg.home_path))
    cmd = [sys.executable, "-m", "o2p.cli", "payouts", "release", "--period", "2026-08"]
    procs = [subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(p.wait(timeout=600), p.stdout.read(), p.stderr.read()) for p in procs]
    codes = sorted(rc for rc, _, _ in results)
    assert codes == [0, 1], results
    (_, out, _), = [r for r in results if r[0] == 0]
    (_, _, err), = [r for r in results if r[0] == 1]
    assert "refused: o2p payouts release --period 2026-08 (pid" in err and "nothing was done" in err, err
    folder = Path(out.strip().splitlines()[-1])
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]        # one batch, nothing else
    assert [(r["promoter_id"], fen(r["gross_cny"])) for r in read_csv(folder / "payout.csv")] == sorted(
        GROSS["2026-08"].items())
    again = run_o2p("payouts", "release", "--period", "2026-08", env=env).stdout.strip().splitlines()[-1]
    assert Path(again) == folder
    assert "OK" in run_o2p("payouts", "verify", str(folder), env=env).stdout

    # verify fails when any byte of any released file changes (here: one in each file, in turn)
    from o2p.registry import Registry
    from o2p.release import verify
    registry = Registry(cfg.registry)
    for f in sorted(folder.iterdir()):
        data = f.read_bytes()
        for at in (0, len(data) // 2, len(data) - 2):
            changed = bytearray(data)
            changed[at] = (changed[at] + 1) % 256
            f.write_bytes(bytes(changed))
            assert verify(folder, registry), (f.name, at)
        f.write_bytes(data)
    assert verify(folder, registry) == []
