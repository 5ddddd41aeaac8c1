"""One JSON Schema (2020-12) per topic, generated from the contracts (`streaming.contracts`).

What a schema registry subject holds (`<topic>-value`) and what a producer in Java, Go or Node
validates against before sending. The files live in `streaming/schemas/v1/<table>.schema.json`
(named by the landing table: topic names are configurable) and are written by
`o2p contracts --write` (or `python -m streaming.topic_schemas`); a unit test fails when a committed
file differs from what this module generates.

Each schema is self-contained (`$defs`, no remote reference), names its topic, key and ordering in
its description, and checks all it can in JSON Schema alone: the types, lengths, ranges, enums,
RFC 3339 shape and calendar (`format: date-time`, an assertion in any validator with format
support), no unknown fields, and the routing rule (a topic's schema admits only its event types).
Two cross-field rules cannot be said in JSON Schema; they are stated in words (`$comment`, the
field descriptions) and checked by the Python contracts and by capture:

- on every order line, `paid_fen = quantity × unit_price_fen − discount_fen`;
- `line_id` values are unique within an order.

Two more are capture's: `occurred_at` at most `quality.max_future_seconds` after capture, and a
message at most `capture.max_message_bytes`. The example messages in `streaming/schemas/examples/`
show each dead-letter reason (`index.json` says which ones JSON Schema alone detects).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, TypeAdapter

from streaming.contracts import (
    Click,
    OrderCancelled,
    OrderConfirmed,
    OrderPaid,
    Refund,
)

VERSION = 1
SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
EXAMPLES_DIR = SCHEMA_DIR / "examples"
DIALECT = "https://json-schema.org/draft/2020-12/schema"
ID_BASE = "urn:o2p:schema:"   # + <table>:v1 (a name, not a location: nothing is fetched)

RULES_IN_WORDS = (
    "Cross-field rules JSON Schema cannot express, checked by capture (a message breaking one is a dead "
    "letter): on every order line paid_fen = quantity * unit_price_fen - discount_fen; line_id values are "
    "unique within an order; occurred_at is at most quality.max_future_seconds (300) after capture; a message "
    "is at most capture.max_message_bytes (1 MiB). Compatibility: a v1 producer may add its own optional data "
    "under `ext` (accepted, not landed); any other new field is a dead letter (unknown_field); a change the "
    "pipeline must read needs schema_version 2 on its own v2 topic.")

TOPICS: dict[str, dict[str, Any]] = {   # landing table → what its topic carries
    "clicks": {
        "models": (Click,),
        "topic": "o2p.clicks.v1", "key": "buyer_id",
        "about": "Clicks on shared links. Key: buyer_id (UTF-8), so one buyer's clicks keep their order "
                 "within a partition.",
    },
    "orders": {
        "models": (OrderPaid, OrderConfirmed, OrderCancelled),
        "topic": "o2p.orders.v1", "key": "order_id",
        "about": "Order events: order_paid, order_confirmed, order_cancelled. Key: order_id (UTF-8), so "
                 "one order's events keep their order within a partition.",
    },
    "refunds": {
        "models": (Refund,),
        "topic": "o2p.refunds.v1", "key": "order_id",
        "about": "Refunds of order lines. Key: order_id (UTF-8), the same partitioning as the orders topic.",
    },
}


def _strip_discriminator(node: Any) -> Any:
    """OpenAPI's `discriminator` is no JSON Schema keyword (strict validators refuse it); each
    branch's `event_type` const already selects the one branch of the `oneOf`."""
    if isinstance(node, dict):
        return {k: _strip_discriminator(v) for k, v in node.items() if k != "discriminator"}
    if isinstance(node, list):
        return [_strip_discriminator(v) for v in node]
    return node


def topic_schema(table: str) -> dict:
    """The JSON Schema of the messages on `table`'s topic (clicks, orders, refunds)."""
    spec = TOPICS[table]
    models = spec["models"]
    if len(models) == 1:
        body = TypeAdapter(models[0]).json_schema()
    else:
        union = Annotated[models[0] | models[1] | models[2], Field(discriminator="event_type")]  # type: ignore[valid-type]
        body = TypeAdapter(union).json_schema()
    body = _strip_discriminator(body)
    head = {
        "$schema": DIALECT,
        "$id": f"{ID_BASE}{table}:v{VERSION}",
        "title": f"o2p {table} events v{VERSION} (topic {spec['topic']})",
        "description": f"Rulebook §1. Topic {spec['topic']} (the default name; kafka.topics.{table} in the "
                       f"config), schema registry subject {spec['topic']}-value. {spec['about']} JSON, UTF-8, "
                       "one event per message.",
        "$comment": RULES_IN_WORDS,
    }
    body.pop("title", None)
    return {**head, **body}


def schema_path(table: str) -> Path:
    return SCHEMA_DIR / f"v{VERSION}" / f"{table}.schema.json"


def render(schema: dict) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def write_all(log=print) -> list[Path]:
    paths = []
    for table in TOPICS:
        path = schema_path(table)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(topic_schema(table)), encoding="utf-8")
        log(str(path))
        paths.append(path)
    return paths


def examples() -> list[dict]:
    """The example messages: each entry names its file (raw bytes, under EXAMPLES_DIR), the topic
    (landing table) it is published to, and `expect`: `valid` or the dead-letter reason code, and
    `json_schema`: whether the topic's JSON Schema alone refuses it (false for the rules above)."""
    return json.loads((EXAMPLES_DIR / "index.json").read_text(encoding="utf-8"))["examples"]


if __name__ == "__main__":
    write_all()
    sys.exit(0)
