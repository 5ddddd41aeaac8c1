"""The whole path on real components: events published to the real broker, `o2p capture`,
`o2p run` (Spark + dbt + GX through Dagster), `o2p payouts release`, exact fen amounts."""

import csv
import io
import json
from pathlib import Path

import pytest

from tests.conftest import run_o2p

pytestmark = pytest.mark.integration

PROMOTERS = """promoter_id,upline_id,tier,buyer_id,payee_openid,payee_name,joined_at,suspended_at
PA,,gold,BA,oA-openid,推客甲,2026-01-01T00:00:00+08:00,
PB,PA,silver,BB,oB-openid,推客乙,2026-01-01T00:00:00+08:00,
"""
PRODUCTS = """sku_id,product_id,brand,category
SKU1,PR1,X,beauty
SKU2,PR2,Y,food
"""
RULES = """rule_id,scope,scope_value,rate,effective_from,effective_to
R0,default,,0.0500,2025-01-01T00:00:00+08:00,
R1,category,beauty,0.1000,2025-01-01T00:00:00+08:00,
R2,sku,SKU2,0.2000,2026-10-01T00:00:00+08:00,
"""


def ev(**kw):
    base = {"source": "storefront", "schema_version": 1}
    return {**base, **kw}


def click(eid, at, promoter, share, buyer, ua="Mozilla/5.0 MicroMessenger/8.0"):
    return ev(event_id=eid, event_type="click", occurred_at=at, promoter_id=promoter, share_id=share,
              buyer_id=buyer, device_id=f"D-{buyer}", sku_id="SKU1", channel="moments", user_agent=ua,
              ip="203.0.113.7")


def line(lid, sku, q, price, disc=0):
    return {"line_id": lid, "sku_id": sku, "quantity": q, "unit_price_fen": price,
            "discount_fen": disc, "paid_fen": q * price - disc}


EVENTS = [
    # O1: buyer U1 arrives through PB's share S1.
    click("c1", "2026-10-02T10:00:00+08:00", "PB", "S1", "U1"),
    ev(event_id="o1", event_type="order_paid", occurred_at="2026-10-02T12:00:00+08:00", order_id="O1",
       buyer_id="U1", share_id="S1", currency="CNY",
       lines=[line("L1", "SKU1", 2, 10000), line("L2", "SKU2", 1, 5025)]),
    ev(event_id="k1", event_type="order_confirmed", occurred_at="2026-10-05T12:00:00+08:00", order_id="O1"),
    ev(event_id="r1", event_type="refund", occurred_at="2026-10-08T00:00:00+08:00", refund_id="RF1",
       order_id="O1", line_id="L1", amount_fen=5000),
    # O2: buyer U2; PA's later click is a bot (curl), so PB's valid click is the last one.
    click("c3", "2026-10-09T09:00:00+08:00", "PB", "S3", "U2"),
    click("c2", "2026-10-10T09:00:00+08:00", "PA", "S2", "U2", ua="curl/8.0"),
    ev(event_id="o2", event_type="order_paid", occurred_at="2026-10-10T02:00:00Z", order_id="O2",
       buyer_id="U2", share_id=None, currency="CNY", lines=[line("L1", "SKU1", 1, 3000)]),
    # O3: no click at all: organic.
    ev(event_id="o3", event_type="order_paid", occurred_at="2026-10-11T10:00:00+08:00", order_id="O3",
       buyer_id="U3", currency="CNY", lines=[line("L1", "SKU1", 1, 99900)]),
]
# A producer retry (same event_id) must count once.
EVENTS.append(dict(EVENTS[6]))


# Every stage must reach its files through any path (issue #11): a space, both quotes, `$`, a
# backslash and Chinese letters; SQL, dbt, Spark, the registry URL and the logs all meet it.
HOSTILE = 'it\'s "o2p" $HOME \\ 家 目录'


def gated_run_and_a_raised_ceiling(cfg, env):
    # 2 dead letters of 11 messages captured today: 18 % is above the 10 % ceiling of this config
    gated = run_o2p("run", env=env, check=False)
    assert gated.returncode == 3, gated.stderr
    assert "check attribution/clicks_validated:gx_landing: landing: FAILED" in gated.stderr
    assert "landing_deadletters: expect_column_values_to_be_between(dead_share)" in gated.stderr
    # one o2p: line at the end names the cause; Dagster's stack traces are in the run's log file
    assert gated.stderr.strip().splitlines()[-1].startswith("o2p: attribution_job: quality gate failed")
    assert "Stack Trace" not in gated.stderr and "Traceback" not in gated.stderr, gated.stderr
    # the ceiling is business policy, in the config: raised, the same data passes
    cfg.write_text(cfg.read_text().replace('max_deadletter_share: "0.10"', 'max_deadletter_share: "0.25"'))


def assert_october(folder: Path) -> bytes:
    """The released files of 2026-10, fen for fen; returns payout.csv's bytes."""
    # Hand computation (rulebook §4-§7), all in fen:
    # O1 → PB by share token S1. L1 paid 2×10000 = 20000, refund 5000 before end(Oct) → net 15000;
    #   beauty category rate 0.10 → direct 1500; override PA 0.02 × 15000 = 300.
    #   L2 paid 5025, SKU2 rule 0.20 → direct 1005; override 0.02 × 5025 = 100.5 → half up 101.
    #   Confirmed 10-05 → eligible 10-12 < end(Oct).
    # O2 → PB by last click c3 (c2 is a curl bot). Paid 3000, beauty 0.10 → 300; override 60.
    #   Not confirmed: auto-confirm 10-20, eligible 10-27 < end(Oct). The duplicate counts once.
    # O3: organic. PB: 1500 + 1005 + 300 = 2805 ≥ 1000 → paid; PA: 300 + 101 + 60 = 461 → carried.
    # Tax (cumulative): taxable = 2805 × 0.8 − 500000 < 0 → 0.
    payout = (folder / "payout.csv").read_bytes()
    assert payout.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(payout.decode("utf-8-sig"))))
    batch_id = folder.name
    assert rows == [
        ["batch_id", "period", "promoter_id", "payee_name", "payee_openid", "gross_cny", "tax_cny", "net_cny"],
        [batch_id, "2026-10", "PB", "推客乙", "oB-openid", "28.05", "0.00", "28.05"],
    ]
    # every CSV for people: BOM, CNY with two decimals, batch_id and period on each row (rulebook §8)
    for name in ("carried.csv", "statement.csv"):
        assert (folder / name).read_bytes().startswith(b"\xef\xbb\xbf"), name
    carried = list(csv.DictReader(io.StringIO((folder / "carried.csv").read_bytes().decode("utf-8-sig"))))
    assert [(r["batch_id"], r["period"], r["promoter_id"], r["carried_in_cny"], r["returned_cny"], r["movement_cny"],
             r["balance_cny"], r["reason"]) for r in carried] == [
        (batch_id, "2026-10", "PA", "0.00", "0.00", "4.61", "4.61", "below_threshold")]
    statement = list(csv.DictReader(io.StringIO((folder / "statement.csv").read_bytes().decode("utf-8-sig"))))
    assert {(r["batch_id"], r["period"], r["note"]) for r in statement} == {(batch_id, "2026-10", "")}
    got = sorted((r["promoter_id"], r["order_id"], r["line_id"], r["role"], r["entitled_cny"]) for r in statement)
    assert got == sorted([
        ("PB", "O1", "L1", "direct", "15.00"), ("PB", "O1", "L2", "direct", "10.05"),
        ("PB", "O2", "L1", "direct", "3.00"), ("PA", "O1", "L1", "override", "3.00"),
        ("PA", "O1", "L2", "override", "1.01"), ("PA", "O2", "L1", "override", "0.60"),
    ])
    # the same in a workbook, ids as text and money as numbers (rulebook §8)
    import openpyxl

    wb = openpyxl.load_workbook(folder / "payout.xlsx")
    assert wb.sheetnames == ["payout", "statement", "carried", "summary"]
    cells = list(wb["payout"].iter_rows(min_row=2, values_only=False))[0]
    assert [(c.value, c.data_type) for c in cells][:3] == [(batch_id, "s"), ("2026-10", "s"), ("PB", "s")]
    assert (cells[5].value, cells[5].data_type, cells[5].number_format) == (28.05, "n", "0.00")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["totals_fen"] == {"gross": 2805, "tax": 0, "net": 2805}
    assert {g["suite"]: g["success"] for g in manifest["quality_gates"]} == {
        "landing": True, "click_validity": True, "attribution": True,
        "commission": True, "settlement": True, "payout": True}
    transfer = json.loads((folder / "wechat_transfer.json").read_text())
    assert [(t["appid"], t["openid"], t["transfer_amount"], t["transfer_scene_id"]) for t in transfer] == [
        ("wx0000000000000000", "oB-openid", 2805, "1005")]
    return payout


@pytest.mark.parametrize("kafka", ["broker", "kafka_cluster"])
def test_order_to_payout_exact_fen(kafka, request, tmp_path):
    """On one broker the whole path; on a three-node cluster (replication factor 3,
    min.insync.replicas 2) what involves the broker — publish, capture, run, the release of
    2026-10 — and the same payout, statement, carried and transfer files, fen for fen."""
    broker = request.getfixturevalue(kafka)
    full = kafka == "broker"
    base = tmp_path / HOSTILE
    home = base / "home"
    ref = base / "reference"
    ref.mkdir(parents=True)
    (ref / "promoters.csv").write_text(PROMOTERS, encoding="utf-8")
    (ref / "products.csv").write_text(PRODUCTS, encoding="utf-8")
    (ref / "commission_rules.csv").write_text(RULES, encoding="utf-8")
    topics = {"clicks": "e2e.clicks", "orders": "e2e.orders", "refunds": "e2e.refunds", "deadletter": "e2e.dead"}
    cfg = base / "o2p.yaml"
    cfg.write_text(
        f'reference_dir: {json.dumps(str(ref))}\n'
        f'kafka:\n  bootstrap_servers: "{broker.kafka.bootstrap_servers}"\n  local_broker: false\n  consumer_group: e2e\n'
        f'  topics: {json.dumps(topics)}\n'
        'spark:\n  conf: {"spark.sql.shuffle.partitions": "2"}\n'
        'quality:\n  max_event_age_days: 36500\n'   # October 2026 is "captured" whenever the test runs
        '  max_deadletter_share: "0.10"\n'
    )
    events = base / "events.jsonl"
    events.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in EVENTS), encoding="utf-8")
    bad = base / "bad.jsonl"
    bad.write_text('{"event_id": "x1", "event_type": "teleport"}\n{not json\n')
    env = {"O2P_CONFIG": str(cfg), "O2P_HOME": str(home)}

    run_o2p("kafka", "up", env=env)            # creates the topics on the running broker
    run_o2p("publish", str(events), env=env)
    if full:
        run_o2p("publish", str(bad), "--topic", topics["orders"], env=env)
    out = run_o2p("capture", "--until-idle", env=env).stdout
    assert "landed 9" in out and f"dead letters {2 if full else 0}" in out, out
    if full:
        gated_run_and_a_raised_ceiling(cfg, env)
    run_o2p("run", env=env)
    folder = Path(run_o2p("payouts", "release", "--period", "2026-10", env=env).stdout.strip().splitlines()[-1])
    payout = assert_october(folder)
    if not full:   # what follows does not involve the broker
        from tests.kafka_cluster import replica_counts

        assert replica_counts(broker, topics["orders"]) == {3}   # `kafka up` made them on three nodes
        return

    # Releasing again returns the same batch, byte for byte; verify passes, then fails on a changed byte.
    again = Path(run_o2p("payouts", "release", "--period", "2026-10", env=env).stdout.strip().splitlines()[-1])
    assert again == folder and (again / "payout.csv").read_bytes() == payout
    run_o2p("payouts", "verify", str(folder), env=env)
    # A month is released once it is over (the golden tests refuse months out of order).
    refused = run_o2p("payouts", "release", "--period", "2099-12", env=env, check=False)
    assert refused.returncode == 2 and "period 2099-12 has not ended yet" in refused.stderr
    statement_text = run_o2p("payouts", "statement", "--promoter", "PB", "--period", "2026-10", env=env).stdout
    assert "28.05" in statement_text and "O1" in statement_text, statement_text

    # A producer reuses order o1's event_id for another order of 999.00 CNY (rulebook §1): not a
    # retry; the copy captured first is kept, this one is reported and changes nothing.
    conflict = dict(EVENTS[1], order_id="O99", lines=[line("L1", "SKU1", 1, 99900)])
    again_file = base / "conflict.jsonl"
    again_file.write_text(json.dumps(conflict) + "\n", encoding="utf-8")
    run_o2p("publish", str(again_file), env=env)
    run_o2p("capture", "--until-idle", env=env)
    run_o2p("run", env=env)
    found = run_o2p("anomalies", "--period", "2026-10", env=env).stdout
    conflict_lines = [ln for ln in found.splitlines() if ln.startswith("event_id_conflict")]
    assert len(conflict_lines) == 1 and "O99" in conflict_lines[0] and "(event o1)" in conflict_lines[0], found
    assert "differs from the orders copy kept at e2e.orders/" in conflict_lines[0]
    import duckdb

    with duckdb.connect(str(home / "warehouse" / "o2p.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from marts.fct_commission_entitlements where order_id = 'O99'"
                           ).fetchone() == (0,)
        assert con.execute("select sum(entitled_fen) from marts.fct_commission_entitlements "
                           "where period = '2026-10' and order_id = 'O1'").fetchone() == (1500 + 1005 + 300 + 101,)
    november = Path(run_o2p("payouts", "release", "--period", "2026-11", env=env).stdout.strip().splitlines()[-1])
    assert (november / "payout.csv").read_bytes().decode("utf-8-sig").splitlines()[1:] == []
    moved = list(csv.DictReader(io.StringIO((november / "statement.csv").read_text(encoding="utf-8-sig"))))
    assert [r for r in moved if r["order_id"] in ("O1", "O99")] == []    # no reversal, no new order
    run_o2p("payouts", "verify", str(folder), env=env)     # the released batch is as it was

    # The click IPs (203.0.113.7) are personal data: only their salted hash is kept (rulebook §1)
    from tests.at_rest import files_holding

    assert files_holding(home, [b"203.0.113.7"]) == []

    tampered = bytearray(payout)
    tampered[-3] = ord("9")
    (folder / "payout.csv").write_bytes(bytes(tampered))
    assert run_o2p("payouts", "verify", str(folder), env=env, check=False).returncode == 1
