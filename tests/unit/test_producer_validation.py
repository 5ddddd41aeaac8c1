"""Producer-side validation (issue #15): EventPublisher and `o2p publish` refuse an event that
capture would dead-letter, before anything is sent, naming the field and the rule; a switch turns
it off. (Mutation check: with `check(...)` removed from EventPublisher.publish the first test fails.)"""

import json

import kafka
import pytest

from o2p.config import load_config
from o2p.errors import InputError
from streaming.producer import EventPublisher, InvalidEvent, publish_file
from streaming.topic_schemas import EXAMPLES_DIR
from tests.recording_producer import RecordingProducer


@pytest.fixture
def producer(monkeypatch):
    sent = RecordingProducer()
    monkeypatch.setattr(kafka, "KafkaProducer", lambda **_: sent)
    return sent


@pytest.fixture
def cfg(tmp_path, producer):
    return load_config(None, home=tmp_path)


def order_paid(**changes):
    event = json.loads((EXAMPLES_DIR / "orders" / "order_paid.json").read_text())
    event.update(changes)
    return event


def test_the_publisher_refuses_an_invalid_event_naming_the_field_and_sends_nothing(cfg, producer):
    bad = order_paid()
    bad["lines"][0]["paid_fen"] = 9980
    with EventPublisher(cfg, producer) as pub:
        with pytest.raises(InvalidEvent) as caught:
            pub.publish(bad)
        pub.publish(order_paid(event_id="ok-1"))
    why = str(caught.value)
    assert why.startswith("event 'st-o-0001' refused before sending: order_paid: lines.0")
    assert "paid_fen 9980 != quantity × unit_price_fen − discount_fen = 9000" in why
    assert [json.loads(v)["event_id"] for _, _, v, _ in producer.sent] == ["ok-1"]


@pytest.mark.parametrize("change, words", [
    ({"currency": "USD"}, "currency: Input should be 'CNY'"),
    ({"coupon": "X"}, "coupon: unknown field"),
    ({"schema_version": 2}, "unsupported_schema_version: version 2"),
    ({"occurred_at": "2026-11-30 23:41:07"}, "occurred_at:"),
])
def test_each_rule_is_named(cfg, producer, change, words):
    with EventPublisher(cfg, producer) as pub, pytest.raises(InvalidEvent, match="refused before sending") as caught:
        pub.publish(order_paid(**change))
    assert words in str(caught.value)
    assert producer.sent == []


def test_validation_can_be_turned_off_and_ext_is_accepted(cfg, producer):
    with EventPublisher(cfg, validate=False) as pub:
        pub.publish(order_paid(currency="USD"))
    with EventPublisher(cfg, producer) as pub:
        pub.publish(order_paid(ext={"shop_build": "5.2.1"}))
    assert len(producer.sent) == 2


def test_o2p_publish_names_file_line_and_field_and_publishes_nothing(cfg, producer, tmp_path):
    bad = order_paid(event_id="b1")
    del bad["currency"]
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps(order_paid()) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(InputError) as caught:
        publish_file(cfg, str(path), log=lambda *_: None)
    assert f"{path}:2: event 'b1' refused before sending: order_paid: currency: required field missing" in str(caught.value)
    assert producer.sent == []
    assert publish_file(cfg, str(path), log=lambda *_: None, validate=False) == 2
