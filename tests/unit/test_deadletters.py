"""`o2p deadletters` without a broker: reading, filtering and exporting the landed dead letters
(the replay on the real broker is in tests/integration/test_deadletters.py)."""

import base64
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from o2p.config import load_config
from o2p.errors import InputError
from o2p.layout import SCHEMAS, capture_date_dir, file_name
from streaming import deadletters as dl


@pytest.fixture
def cfg(tmp_path):
    cfg = load_config(None, home=tmp_path)
    t = cfg.kafka.topics
    rows = [
        (t.orders, 0, b'{"event_id": "e1", "source": "bot", "event_type": "order_paid"}',
         "order_paid: currency: required field missing"),
        (t.clicks, 1, b"\xff\xfe not utf-8", "not valid UTF-8 JSON: expected value at line 1 column 1"),
        (t.orders, 2, b'{"event_id": "e3", "source": "storefront", "schema_version": 2}',
         "order_confirmed: schema_version: unsupported_schema_version: version 2 is not captured"),
    ]
    for day, (topic, offset, raw, reason) in zip(["2026-11-30", "2026-12-01", "2026-12-01"], rows, strict=True):
        folder = capture_date_dir(cfg.landing_path, day)
        folder.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pylist([{"_topic": topic, "_partition": 0, "_offset": offset, "_captured_at_us": offset,
                                       "capture_date": day, "key": None, "raw": raw, "reason": reason}],
                                     schema=SCHEMAS["deadletters"])
        pq.write_table(table, folder / file_name(topic, 0, offset, offset))
    return cfg


def test_dead_letters_are_read_with_code_source_and_event_id_and_filtered(cfg):
    rows = dl.read(cfg)
    assert [(d["reason_code"], d["source"], d["event_id"]) for d in rows] == [
        ("missing_field", "bot", "e1"), ("not_json", "unknown", None), ("unsupported_schema_version", "storefront", "e3")]
    assert [d["event_id"] for d in dl.read(cfg, topic="orders")] == ["e1", "e3"]
    assert [d["event_id"] for d in dl.read(cfg, topic=cfg.kafka.topics.orders, date="2026-12-01")] == ["e3"]
    assert [d["event_id"] for d in dl.read(cfg, source="bot")] == ["e1"]
    assert dl.counts(cfg)["reason"] == {"missing_field": 1, "not_json": 1, "unsupported_schema_version": 1}


def test_an_export_keeps_bytes_that_are_not_utf8_as_base64_and_the_event_to_fix(cfg):
    recs = [json.loads(line) for line in dl.export_lines(dl.read(cfg)).splitlines()]
    assert recs[0]["event"] == {"event_id": "e1", "source": "bot", "event_type": "order_paid"}
    assert base64.b64decode(recs[1]["raw_base64"]) == b"\xff\xfe not utf-8" and recs[1]["event"] is None
    assert recs[1]["dead_letter"] == f"{cfg.kafka.topics.clicks}/0/1"


@pytest.mark.parametrize("kw, words", [({"reason": "typo"}, "--reason: 'typo' is no reason code"),
                                       ({"topic": "payments"}, "--topic: 'payments' is neither"),
                                       ({"source": "crm"}, "--source: 'crm' is not one of")])
def test_a_bad_filter_is_refused_naming_it(cfg, kw, words):
    with pytest.raises(InputError, match=words):
        dl.read(cfg, **kw)


def test_a_replay_file_with_a_line_that_is_no_event_is_refused_whole(cfg, tmp_path):
    path = tmp_path / "fixed.jsonl"
    path.write_text('{"dead_letter": "x/0/1", "event": null}\n')
    with pytest.raises(InputError, match=r"fixed.jsonl:1: no `event` object"):
        dl.replay(cfg, path, "ops")


def test_the_landing_assets_observations_carry_dead_letters_by_source_and_reason(cfg):
    from pipelines.assets.landing.assets import observation

    dead = dl.counts_by_table(cfg)
    assert dead == {"orders": {"source": {"bot": 1, "storefront": 1},
                               "reason": {"missing_field": 1, "unsupported_schema_version": 1}},
                    "clicks": {"source": {"unknown": 1}, "reason": {"not_json": 1}}}
    meta = observation("orders", [], broker_up=False, dead=dead["orders"]).metadata
    assert meta["dead_letters_by_source"].data == {"bot": 1, "storefront": 1}
    assert meta["dead_letters_by_reason"].data == {"missing_field": 1, "unsupported_schema_version": 1}
