"""Dead letters an operator can fix (issue #15), on the real broker: a burst of malformed orders is
listed by reason, exported, fixed with jq, replayed and lands exactly once; replaying the same file
again sends nothing; an event_id the producer already re-sent valid is not replayed; an unfixed
file is refused whole; `capture --status` counts dead letters by source and reason; and the
dead-letter ceiling a release judges holds before the fix and passes once the replays have landed
(the gate function the release runs, here without a whole release)."""

import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from pipelines.lib.gates import deadletter_share
from streaming.producer import EventPublisher
from streaming.topic_schemas import EXAMPLES_DIR
from tests.conftest import run_o2p
from tests.inprocess import o2p_here
from tests.integration.test_capture import SALT, every_offset_once, landed, make_cfg

pytestmark = pytest.mark.integration
JQ_FIX = ".event.lines |= map(.paid_fen = .quantity * .unit_price_fen - .discount_fen)"


def order(i: int, *, broken: bool, source: str = "storefront") -> dict:
    e = json.loads((EXAMPLES_DIR / "orders" / "order_paid.json").read_text(encoding="utf-8"))
    e.update(event_id=f"o-{i}", order_id=f"O-{i}", source=source)
    if broken:   # the discount forgotten in paid_fen: 9980 instead of 9000
        e["lines"][0]["paid_fen"] = e["lines"][0]["quantity"] * e["lines"][0]["unit_price_fen"]
    return e


def fix(src, dst) -> None:
    if shutil.which("jq"):
        with open(dst, "wb") as out:
            subprocess.run(["jq", "-c", JQ_FIX, str(src)], stdout=out, check=True, timeout=60)
        return
    lines = []   # jq is the operator's tool (./dev test installs it); the same fix in Python otherwise
    for line in src.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        for ln in rec["event"]["lines"]:
            ln["paid_fen"] = ln["quantity"] * ln["unit_price_fen"] - ln["discount_fen"]
        lines.append(json.dumps(rec, ensure_ascii=False))
    dst.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_a_burst_of_malformed_orders_is_listed_exported_fixed_replayed_and_lands_once(broker, tmp_path):
    cfg, cfg_file = make_cfg(broker, tmp_path, partitions=2)
    o2p = ["--config", str(cfg_file), "--home", str(cfg.home_path)]
    with EventPublisher(cfg, validate=False) as pub:   # a producer that does not validate
        for i in range(10):
            pub.publish(order(i, broken=False))
        for i in range(10, 40):
            pub.publish(order(i, broken=True, source="bot" if i % 3 == 0 else "storefront"))
        pub.publish(order(40, broken=True))
        pub.publish(order(40, broken=False))    # its producer already sent it again, fixed
        pub.publish_raw(cfg.kafka.topics.orders, b'{"event_id": "cut-off",')
    run_o2p(*o2p, "capture", "--until-idle", env=SALT)
    _, event_ids, reasons = landed(cfg)
    assert len(reasons) == 32 and sorted(event_ids) == sorted(f"o-{i}" for i in [*range(10), 40])
    held = deadletter_share(cfg)     # the release's dead-letter ceiling: 32 of 43 messages today
    assert not held.success

    listed = o2p_here(*o2p, "deadletters", "list", "--reason", "cross_field_rule").stdout
    assert "31 dead letter(s): cross_field_rule 31" in listed and "not_json" not in listed
    assert "1 dead letter(s): not_json 1" in o2p_here(*o2p, "deadletters", "list", "--reason", "not_json").stdout
    assert "10 dead letter(s)" in o2p_here(*o2p, "deadletters", "list", "--source", "bot", "--topic", "orders").stdout
    status = o2p_here(*o2p, "capture", "--status").stdout
    assert "dead letters by source: bot 10, storefront 21, unknown 1" in status
    assert "dead letters by reason: cross_field_rule 31, not_json 1" in status

    exported = tmp_path / "orders-deadletters.jsonl"
    o2p_here(*o2p, "deadletters", "export", "--reason", "cross_field_rule", "--out", str(exported))
    recs = [json.loads(line) for line in exported.read_text(encoding="utf-8").splitlines()]
    assert len(recs) == 31 and all(r["raw"] and r["event"]["event_id"] == r["event_id"] for r in recs)
    first = recs[0]["dead_letter"]
    assert "paid_fen 9980 != quantity" in o2p_here(*o2p, "deadletters", "show", first).stdout

    refused = o2p_here(*o2p, "--as", "ops-alice", "deadletters", "replay", str(exported), check=False)
    assert refused.returncode == 2 and "nothing was replayed" in refused.stderr
    assert f"{exported}:1: event 'o-" in refused.stderr and "paid_fen 9980 != quantity" in refused.stderr

    fixed = tmp_path / "fixed.jsonl"
    fix(exported, fixed)
    out = o2p_here(*o2p, "--as", "ops-alice", "deadletters", "replay", str(fixed)).stdout
    assert "31 fixed event(s): 30 replayed, 1 skipped" in out and "o-40 is already landed" in out
    run_o2p(*o2p, "capture", "--until-idle", env=SALT)
    offsets, event_ids, _ = landed(cfg)
    assert offsets == every_offset_once(cfg)
    assert event_ids == Counter({f"o-{i}": 1 for i in range(41)})   # every order exactly once
    assert deadletter_share(cfg).success   # 31 resolved: only the not_json one counts, 1 of 42 (5 % ceiling)

    again = o2p_here(*o2p, "--as", "ops-bob", "deadletters", "replay", str(fixed)).stdout
    assert "31 fixed event(s): 0 replayed, 31 skipped" in again
    run_o2p(*o2p, "capture", "--until-idle", env=SALT)
    assert landed(cfg)[0] == offsets                                # nothing new landed

    log = [json.loads(line) for line in (cfg.home_path / "deadletters" / "replays.jsonl").read_text().splitlines()]
    assert Counter(r["outcome"] for r in log) == {"replayed": 30, "already_landed": 1}
    assert {r["replayed_by"] for r in log} == {"ops-alice"}
    assert {r["dead_letter"] for r in log} <= {r["dead_letter"] for r in recs}
    shown = o2p_here(*o2p, "deadletters", "show", log[0]["dead_letter"]).stdout
    assert f"replayed by ops-alice at {log[0]['replayed_at']} as event_id {log[0]['event_id']}" in shown
    assert "32 dead letter(s)" in o2p_here(*o2p, "deadletters", "list").stdout   # kept, marked replayed


def test_a_release_held_by_a_burst_of_dead_letters_goes_through_once_they_are_fixed_and_replayed(broker, tmp_path):
    """End to end (Spark, dbt, GX, the release): five malformed orders hold `o2p run` at the
    dead-letter ceiling; exported, fixed with jq, replayed and captured, the same run passes and
    October is released with the amounts of tests/integration/test_end_to_end.py (the five are
    organic: they change no commission)."""
    import uuid

    from tests.integration.test_end_to_end import EVENTS, PRODUCTS, PROMOTERS, RULES, line

    base = tmp_path / "held"
    ref = base / "reference"
    ref.mkdir(parents=True)
    for name, text in (("promoters", PROMOTERS), ("products", PRODUCTS), ("commission_rules", RULES)):
        (ref / f"{name}.csv").write_text(text, encoding="utf-8")
    n = f"h{uuid.uuid4().hex[:8]}"
    topics = {"clicks": f"{n}.clicks", "orders": f"{n}.orders", "refunds": f"{n}.refunds", "deadletter": f"{n}.dead"}
    cfg_file = base / "o2p.yaml"
    cfg_file.write_text(
        f'reference_dir: {json.dumps(str(ref))}\n'
        f'kafka:\n  bootstrap_servers: "{broker.kafka.bootstrap_servers}"\n  local_broker: false\n'
        f'  consumer_group: {n}\n  topics: {json.dumps(topics)}\n'
        'spark:\n  conf: {"spark.sql.shuffle.partitions": "2"}\n'
        'quality:\n  max_event_age_days: 36500\n  max_deadletter_share: "0.10"\n')
    env = {"O2P_CONFIG": str(cfg_file), "O2P_HOME": str(base / "home"), **SALT}
    good, bad = base / "events.jsonl", base / "bad.jsonl"
    good.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in EVENTS), encoding="utf-8")
    broken = []
    for i in range(5):   # organic orders (buyer U9 never clicked) whose paid_fen forgot the discount
        ln = line("L1", "SKU1", 2, 1000, 300)
        ln["paid_fen"] = 2000
        broken.append({"event_id": f"burst-{i}", "event_type": "order_paid", "occurred_at": "2026-10-12T10:00:00+08:00",
                       "source": "bot", "schema_version": 1, "order_id": f"OB{i}", "buyer_id": "U9",
                       "currency": "CNY", "lines": [ln]})
    bad.write_text("".join(json.dumps(e) + "\n" for e in broken), encoding="utf-8")

    run_o2p("kafka", "up", env=env)
    run_o2p("publish", str(good), env=env)
    refused = run_o2p("publish", str(bad), env=env, check=False)      # the publisher validates …
    assert refused.returncode == 2 and f"{bad}:1: event 'burst-0' refused before sending" in refused.stderr
    run_o2p("publish", str(bad), "--no-validate", env=env)           # … unless told not to
    run_o2p("capture", "--until-idle", env=env)
    # `o2p run` and the release in this process (the session's Spark: no JVM started per command)
    held = o2p_here("run", env=env, unset=("DAGSTER_HOME",), check=False)   # 5 dead letters of 14 messages: 36 %
    assert held.returncode == 3 and "landing_deadletters" in held.stderr, held.stderr

    exported, fixed = base / "burst.jsonl", base / "fixed.jsonl"
    o2p_here("deadletters", "export", "--reason", "cross_field_rule", "--out", str(exported), env=env)
    fix(exported, fixed)
    assert "5 replayed, 0 skipped" in o2p_here("--as", "ops-alice", "deadletters", "replay", str(fixed), env=env).stdout
    run_o2p("capture", "--until-idle", env=env)
    o2p_here("run", env=env, unset=("DAGSTER_HOME",))
    folder = Path(o2p_here("payouts", "release", "--period", "2026-10", env=env,
                           unset=("DAGSTER_HOME",)).stdout.strip().splitlines()[-1])
    rows = (folder / "payout.csv").read_text(encoding="utf-8-sig").splitlines()
    assert rows[1:] == [f"{folder.name},2026-10,PB,推客乙,oB-openid,28.05,0.00,28.05"]
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert "landing" in json.dumps(manifest)
