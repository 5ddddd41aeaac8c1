"""The per-topic JSON Schemas upstream teams build against (issue #15): generated from the contracts
and never drifting; every field described with an example; and the example messages validated
both ways, by the Python contracts (each dead letter with its reason code) and by the JSON Schemas
alone (what they can detect). The same examples go through ajv, a Node validator, in
tests/integration/test_schemas_node.py."""

import json
import time

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from streaming.contracts import REASONS, ContractError, reason_code, validate_event
from streaming.topic_schemas import (
    EXAMPLES_DIR,
    TOPICS,
    examples,
    render,
    schema_path,
    topic_schema,
)

NOW_PLUS_300_US = time.time_ns() // 1000 + 300_000_000   # what capture passes: now + max_future_seconds


@pytest.mark.parametrize("table", list(TOPICS))
def test_the_committed_topic_schemas_are_what_the_contracts_generate(table):
    """Regenerate with `o2p contracts --write`."""
    assert schema_path(table).read_text(encoding="utf-8") == render(topic_schema(table))


@pytest.mark.parametrize("table", list(TOPICS))
def test_every_field_is_described_with_an_example_and_the_schema_is_2020_12(table):
    schema = topic_schema(table)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"urn:o2p:schema:{table}:v1"
    Draft202012Validator.check_schema(schema)
    assert "discriminator" not in json.dumps(schema)
    seen = 0

    def walk(node):
        nonlocal seen
        if isinstance(node, dict):
            for name, prop in node.get("properties", {}).items():
                seen += 1
                assert prop.get("description") and prop.get("examples"), f"{table}: {name} is not described"
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(schema)
    assert seen >= 8


def test_every_dead_letter_reason_has_an_example_but_those_no_file_can_show():
    shown = {e["expect"] for e in examples()}
    assert set(REASONS) - shown == {"empty", "oversized"}
    assert shown - set(REASONS) == {"valid"}


@pytest.mark.parametrize("ex", examples(), ids=lambda e: e["file"])
def test_each_example_is_judged_by_the_python_contracts_as_its_index_says(ex):
    raw = (EXAMPLES_DIR / ex["file"]).read_bytes()
    if ex["expect"] == "valid":
        row = validate_event(raw, ex["topic"], lambda ip: "h", NOW_PLUS_300_US, 300)
        assert "ext" not in row and "ip" not in row
        return
    with pytest.raises(ContractError) as caught:
        validate_event(raw, ex["topic"], None, NOW_PLUS_300_US, 300)
    assert reason_code(str(caught.value)) == ex["expect"], str(caught.value)


@pytest.mark.parametrize("ex", examples(), ids=lambda e: e["file"])
def test_each_example_is_judged_by_the_json_schema_alone_as_its_index_says(ex):
    """A Python JSON Schema validator (another implementation than pydantic's): the schema alone
    accepts the valid examples and refuses the dead letters it can detect (`json_schema: true`)."""
    raw = (EXAMPLES_DIR / ex["file"]).read_bytes()
    try:
        doc = json.loads(raw)
    except ValueError:
        assert ex["expect"] == "not_json"
        return
    validator = Draft202012Validator(topic_schema(ex["topic"]), format_checker=FormatChecker())
    errors = list(validator.iter_errors(doc))
    if ex["expect"] == "valid":
        assert not errors, [e.message for e in errors]
    else:
        assert bool(errors) == ex["json_schema"], (ex, [e.message for e in errors])


@pytest.mark.parametrize("reason, code", [
    ("empty message (no value)", "empty"),
    ("message of 9000 bytes exceeds capture.max_message_bytes (8192)", "oversized"),
    ("not valid UTF-8 JSON: EOF while parsing an object at line 1 column 22", "not_json"),
    ("unknown event_type 'x' (expected one of click, …)", "unknown_event_type"),
    ("no event_type (expected one of click, …)", "unknown_event_type"),
    ("event_type 'click' belongs on the clicks topic, not the orders topic", "wrong_topic"),
    ("order_paid: occurred_at: '2026-02-30T10:00:00+08:00' is not a real instant: day is out of range", "bad_timestamp"),
    ("order_paid: lines.0.quantity: Input should be greater than or equal to 1; currency: unknown field",
     "invalid_value"),
    ("refund: amount_fen: required field missing", "missing_field"),
])
def test_reason_codes_read_the_first_complaint_of_a_reason(reason, code):
    assert reason_code(reason) == code
