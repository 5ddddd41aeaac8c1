"""The compatibility policy (README, *Producer guide*), on the real broker: a v1 producer may add its
own optional data under `ext` (the event lands, `ext` is not landed); a new top-level field is still
a dead letter (unknown_field); a schema_version 2 event on a v1 topic is a dead letter
(unsupported_schema_version), and on its own v2 topic it waits there for the release that
captures v2, untouched by v1 capture."""

import json

import pyarrow.dataset as ds
import pytest

from streaming.contracts import reason_code
from streaming.producer import EventPublisher
from streaming.topic_schemas import EXAMPLES_DIR
from tests.conftest import run_o2p
from tests.integration.test_capture import SALT, every_offset_once, landed, make_cfg

pytestmark = pytest.mark.integration


def example(name: str, **changes) -> dict:
    return {**json.loads((EXAMPLES_DIR / "orders" / name).read_text(encoding="utf-8")), **changes}


def create_topic(cfg, name: str) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=cfg.kafka.bootstrap_servers, client_id="o2p-test-admin")
    try:
        admin.create_topics([NewTopic(name, 1, 1)], timeout_ms=30000)
    finally:
        admin.close()


def test_a_v1_event_with_ext_lands_and_a_v2_event_is_a_dead_letter_or_waits_on_its_own_topic(broker, tmp_path):
    cfg, cfg_file = make_cfg(broker, tmp_path, partitions=1)
    v2_topic = cfg.kafka.topics.orders.rsplit(".", 1)[0] + ".orders-v2"
    create_topic(cfg, v2_topic)
    v1_ext = example("order_paid_with_ext.json", event_id="v1-ext")
    plain = example("order_paid.json", event_id="v1-plain")
    new_field = example("order_confirmed.json", event_id="v1-new-field", warehouse="SH-2")
    v2 = example("order_confirmed.json", event_id="v2-1", schema_version=2, fulfilment={"carrier": "SF"})
    with EventPublisher(cfg) as pub:
        pub.publish(v1_ext)
        pub.publish(plain)
    with EventPublisher(cfg, validate=False) as pub:   # what a producer without validation would send
        pub.publish(new_field)
        pub.publish(v2)
        pub.publish_raw(v2_topic, json.dumps(v2).encode(), key=b"O-20261130-0042")
    run_o2p("--config", str(cfg_file), "--home", str(cfg.home_path), "capture", "--until-idle", env=SALT)

    offsets, event_ids, reasons = landed(cfg)
    assert offsets == every_offset_once(cfg)          # every offset of the v1 topics landed once
    assert all(t != v2_topic for t, _, _ in offsets)  # the v2 topic is not read by v1 capture
    assert sorted(event_ids) == ["v1-ext", "v1-plain"]
    rows = ds.dataset(cfg.landing_path / "orders", format="parquet", partitioning="hive").to_table()
    assert "ext" not in rows.column_names
    by_id = {r["event_id"]: r for r in rows.to_pylist()}
    keep = [k for k in plain if k not in ("event_id", "ext")]
    assert [by_id["v1-ext"][k] for k in keep] == [by_id["v1-plain"][k] for k in keep]   # ext changes nothing
    codes = sorted(reason_code(r) for r in reasons.values())
    assert codes == ["unknown_field", "unsupported_schema_version"], reasons
    assert any("publish it to its v2 topic" in r for r in reasons.values())
