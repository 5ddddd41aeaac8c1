"""Event contracts (rulebook §1): the single source of truth for producers and the capture consumer.

`validate_event(raw_bytes, topic_table)` returns a flat row for the landing
zone or raises `ContractError` with a reason a person can act on; `reason_code(reason)` names its
kind (REASONS: the filters of `o2p deadletters`). The JSON Schemas that upstream teams read, one per
topic, are generated from these models (`streaming.topic_schemas`, `o2p contracts --write`), so
every field carries its description and an example here.

Compatibility (README): `ext`, an optional JSON object, is the producer's own data: accepted and
dropped by `to_row`, never landed. A `schema_version` above 1 is refused with a reason starting
`unsupported_schema_version:` (a v2 event belongs on its own v2 topic).

Events from the future: capture passes `latest_us` (its capture time plus
`quality.max_future_seconds`); an event whose `occurred_at` is after it is
refused with a reason starting `occurred_in_future:` — one integer comparison
per event, so no landing day partition is ever created for it. Exactly
`max_future_seconds` ahead is accepted, one microsecond more is not.

Personal data: a click's raw `ip` never leaves `to_row` (it becomes the salted
`ip_hash`), and no reason built here quotes the `ip` field's value (pydantic's
messages for it name the rule, never the input). Reasons may quote other
fields (an unknown `event_type`, an unparseable `occurred_at`), so capture
masks IP addresses in every dead letter's reason and raw bytes
(`streaming.privacy`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, NotRequired, get_args, get_type_hints

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)
from typing_extensions import TypedDict

from o2p.timeutil import RFC3339, US_PER_DAY, US_PER_SECOND, parse_rfc3339, shanghai_day, to_us

Id = Annotated[str, Field(min_length=1, max_length=64)]
Fen = Annotated[int, Field(ge=0, le=10**13)]


def _doc(description: str, example: Any) -> Any:
    """A field's description and example for the JSON Schemas upstream teams read (no effect on
    validation)."""
    return Field(description=description, examples=[example])

CHANNELS = ("moments", "group", "private_chat", "mini_program", "live", "bot_push")
EVENT_TYPES = ("click", "order_paid", "order_confirmed", "order_cancelled", "refund")
TOPIC_OF_TYPE = {   # event_type → its topic, named by the landing table it feeds
    "click": "clicks",
    "order_paid": "orders",
    "order_confirmed": "orders",
    "order_cancelled": "orders",
    "refund": "refunds",
}


class ContractError(ValueError):
    """The event breaks the contract; the message is the dead letter's reason."""


_STRICT = ConfigDict(extra="forbid", strict=True)
Timestamp = Annotated[str, StringConstraints(pattern=RFC3339), Field(
    description="When it happened at the source: RFC 3339 with an offset, e.g. 2026-11-30T23:30:00+08:00 or "
                "2026-11-30T15:30:00.123Z; a real calendar instant in the years 2000-2100; fractions beyond "
                "microseconds are truncated; more than quality.max_future_seconds (default 300) after its capture "
                "is a dead letter (occurred_in_future)",
    examples=["2026-11-30T23:30:00+08:00"], json_schema_extra={"format": "date-time"})]
# Reserved for producers' own data (compatibility policy, README): any JSON object, accepted in v1
# and dropped at capture; what the pipeline must read becomes a contract field of a new version.
Ext = Annotated[dict[str, Any] | None, _doc(
    "Reserved for the producer's own optional data (any JSON object): accepted and not landed "
    "(capture drops it). A field the pipeline must read needs a new schema_version", {"shop_build": "5.2.1"})]
# Events are TypedDicts rather than BaseModels: validate_json then yields plain dicts (no model
# instances to build and dump), and every check but the calendar (in to_row) runs in pydantic-core:
# a third of the cost per event in capture's hot loop.


class _Event(TypedDict):
    __pydantic_config__ = _STRICT  # type: ignore[misc]

    event_id: Annotated[Id, _doc(
        "Unique per logical event (1-64 characters); a producer retrying sends the same id again and the "
        "pipeline keeps one. The same id with other content is an event_id_conflict: the first captured wins",
        "st-20261130-000123")]
    occurred_at: Timestamp
    source: Annotated[Literal["storefront", "bot"], _doc(
        "Who published it: a storefront (mini-program or H5 shop) or a group bot", "storefront")]
    # not Literal[1]: a Literal compares with ==, so JSON `true` (== 1 in Python) would pass
    schema_version: Annotated[int, Field(ge=1, le=1, json_schema_extra={"const": 1}), _doc(
        "The contract version: 1 on the v1 topics. A version 2 event goes to its own v2 topic; on a v1 "
        "topic it is a dead letter (unsupported_schema_version)", 1)]
    ext: NotRequired[Ext]


# who may publish (the `source` field's Literal), for readers outside the contract (the GX suites)
SOURCES: tuple[str, ...] = get_args(get_type_hints(_Event)["source"])


class Click(_Event):
    event_type: Annotated[Literal["click"], _doc("A buyer opened a promoter's shared link", "click")]
    promoter_id: Annotated[Id, _doc("The promoter who shared the link", "P1001")]
    share_id: Annotated[Id, _doc("The share token of the link (an order may name it)", "S-8f3a")]
    buyer_id: Annotated[Id, _doc("The buyer's shopper id", "B20001")]
    device_id: Annotated[Id, _doc("The buyer's device (flood detection counts clicks per device)", "D-77c1")]
    sku_id: Annotated[Id, _doc("The product SKU the link shows", "SKU-1")]
    channel: Annotated[Literal[CHANNELS], _doc("Where the link was shared", "group")]
    user_agent: NotRequired[Annotated[Annotated[str, Field(max_length=2048)] | None, _doc(
        "The browser's User-Agent (bots and crawlers make the click invalid); optional, may be null",
        "Mozilla/5.0 (iPhone) MicroMessenger/8.0.50")]]
    ip: NotRequired[Annotated[Annotated[str, Field(max_length=64)] | None, _doc(
        "The buyer's IP address; personal data: only its salted hash is stored; optional, may be null",
        "203.0.113.9")]]


class _OrderLine(TypedDict):
    __pydantic_config__ = _STRICT  # type: ignore[misc]

    line_id: Annotated[Id, _doc("The line within its order (unique in the order; refunds name it)", "L1")]
    sku_id: Annotated[Id, _doc("The SKU bought", "SKU-1")]
    quantity: Annotated[int, Field(ge=1, le=100000), _doc("Units bought (1-100000)", 2)]
    unit_price_fen: Annotated[Fen, _doc("Price of one unit in fen (integer; 1 CNY = 100 fen)", 4990)]
    discount_fen: Annotated[Fen, _doc("Discount on the whole line in fen", 980)]
    paid_fen: Annotated[Fen, _doc(
        "What the buyer paid for the line in fen; must equal quantity × unit_price_fen − discount_fen", 9000)]


def _arithmetic(line: dict) -> dict:
    expected = line["quantity"] * line["unit_price_fen"] - line["discount_fen"]
    if line["paid_fen"] != expected:
        raise ValueError(
            f"line {line['line_id']}: paid_fen {line['paid_fen']} != quantity × unit_price_fen − "
            f"discount_fen = {expected}"
        )
    return line


def _unique_lines(lines: list[dict]) -> list[dict]:
    if len({line["line_id"] for line in lines}) != len(lines):
        raise ValueError("line_id values repeat within the order")
    return lines


OrderLine = Annotated[_OrderLine, AfterValidator(_arithmetic)]


_ORDER_ID = _doc("The order (the message key on the orders topic)", "O-20261130-0042")


class OrderPaid(_Event):
    event_type: Annotated[Literal["order_paid"], _doc("The buyer paid the order", "order_paid")]
    order_id: Annotated[Id, _ORDER_ID]
    buyer_id: Annotated[Id, _doc("The buyer's shopper id", "B20001")]
    share_id: NotRequired[Annotated[Id | None, _doc(
        "The share token the buyer arrived with; optional, may be null", "S-8f3a")]]
    currency: Annotated[Literal["CNY"], _doc("Always CNY", "CNY")]
    lines: Annotated[list[OrderLine], Field(min_length=1, max_length=500), AfterValidator(_unique_lines), _doc(
        "1-500 lines; line_id values unique within the order; on each line paid_fen = quantity × "
        "unit_price_fen − discount_fen",
        [{"line_id": "L1", "sku_id": "SKU-1", "quantity": 2, "unit_price_fen": 4990, "discount_fen": 980,
          "paid_fen": 9000}])]


class OrderConfirmed(_Event):
    event_type: Annotated[Literal["order_confirmed"], _doc(
        "The buyer confirmed receipt (确认收货)", "order_confirmed")]
    order_id: Annotated[Id, _ORDER_ID]


class OrderCancelled(_Event):
    event_type: Annotated[Literal["order_cancelled"], _doc(
        "The order was cancelled: every line fully refunded at occurred_at", "order_cancelled")]
    order_id: Annotated[Id, _ORDER_ID]


class Refund(_Event):
    event_type: Annotated[Literal["refund"], _doc("Money returned on one line of an order", "refund")]
    refund_id: Annotated[Id, _doc("The refund (counted once)", "R-5521")]
    order_id: Annotated[Id, _ORDER_ID]
    line_id: Annotated[Id, _doc("The refunded line of that order", "L1")]
    amount_fen: Annotated[int, Field(gt=0, le=10**13), _doc("Amount refunded in fen (> 0)", 4500)]


AnyEvent = Annotated[
    Click | OrderPaid | OrderConfirmed | OrderCancelled | Refund,
    Field(discriminator="event_type"),
]
# Only the keys' strings are cached: caching values too (pydantic's default) cost capture ~30 % of
# validation, as nearly every value (event ids, timestamps, user ids) is seen once.
_ADAPTER: TypeAdapter[Any] = TypeAdapter(AnyEvent, config=ConfigDict(cache_strings="keys"))
_VALIDATE_JSON = _ADAPTER.validator.validate_json   # pydantic-core directly: no wrapper per event


def event_json_schema() -> dict:
    """The JSON Schema of every event, for upstream producers."""
    schema = _ADAPTER.json_schema()
    schema["title"] = "o2p events v1"
    schema["$comment"] = (
        "Rulebook §1. Also enforced: paid_fen = quantity*unit_price_fen - discount_fen per line; "
        "occurred_at is RFC 3339 with an offset; clicks go to the clicks topic, order_* to orders, "
        "refund to refunds."
    )
    return schema


def _reason(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"][1:] if p is not None) or "event"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        elif err["type"] == "string_pattern_mismatch" and loc == "occurred_at":
            try:
                parse_rfc3339(err["input"])
            except ValueError as why:
                msg = f"{why} (e.g. 2026-11-30T23:30:00+08:00)"
        elif err["type"] == "missing":
            msg = "required field missing"
        elif loc == "schema_version" and type(err["input"]) is int and err["input"] > 1:
            msg = (f"unsupported_schema_version: version {err['input']} is not captured from a v1 topic "
                   f"(publish it to its v{err['input']} topic)")
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


_TAG_ERRORS = ("union_tag_invalid", "union_tag_not_found")


def parse_event(raw: bytes) -> dict:
    """Parse and validate in one pass (pydantic-core reads the JSON bytes itself: ~2× faster than
    json.loads + validate, and it refuses lone surrogates that could not be written as UTF-8)."""
    try:
        return _VALIDATE_JSON(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            raise ContractError(f"not valid UTF-8 JSON: {first['msg'].removeprefix('Invalid JSON: ')}") from None
        if first["type"] in ("dict_type", "model_type"):
            raise ContractError("the event must be a JSON object") from None
        if first["type"] in _TAG_ERRORS:
            tag = first.get("ctx", {}).get("tag")
            got = "no event_type" if tag is None else f"unknown event_type {tag!r}"
            raise ContractError(f"{got} (expected one of {', '.join(EVENT_TYPES)})") from None
        etype = str(first["loc"][0]) if first["loc"] else "event"
        raise ContractError(f"{etype}: {_reason(exc)}") from None


NO_LIMIT = 1 << 62   # latest_us when nothing is "in the future" (unit tests, offline checks)


def _span(us: int) -> str:
    if us >= 2 * US_PER_DAY:
        return f"{us // US_PER_DAY} days"
    if us >= 2 * 3600 * US_PER_SECOND:
        return f"{us / (3600 * US_PER_SECOND):.1f} hours"
    return f"{us // US_PER_SECOND}.{us % US_PER_SECOND:06d}".rstrip("0").rstrip(".") + " s"


def future_reason(text: str, occurred_us: int, latest_us: int, max_future_seconds: int) -> str:
    """The dead-letter reason of an event dated more than max_future_seconds after its capture."""
    ahead = occurred_us - (latest_us - max_future_seconds * US_PER_SECOND)
    return (f"occurred_in_future: occurred_at {text} is {_span(ahead)} after its capture "
            f"(quality.max_future_seconds = {max_future_seconds})")


def to_row(event: dict, ip_hasher=None, latest_us: int = NO_LIMIT, max_future_seconds: int = 0) -> dict:
    """A flat landing-zone row: the original timestamp text plus its instant and Shanghai date.
    `event` is what parse_event returned (a fresh dict, updated in place). An `occurred_at`
    after `latest_us` (capture time + max_future_seconds, which is only used in the reason) is
    refused: `occurred_in_future`."""
    text = event["occurred_at"]
    try:   # the shape was checked by the schema's pattern; the calendar (02-30, 24:00) is checked here
        dt = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1] in "Zz" else text)
    except ValueError as exc:
        raise ContractError(f"{event['event_type']}: occurred_at: {text!r} is not a real instant: {exc}") from None
    if not 2000 <= dt.year <= 2100:
        raise ContractError(f"{event['event_type']}: occurred_at: {text!r} is outside the years 2000-2100")
    us = to_us(dt)
    if us > latest_us:
        raise ContractError(future_reason(text, us, latest_us, max_future_seconds))
    event["occurred_at_us"] = us
    event["event_date"] = shanghai_day(us)
    event.pop("ext", None)   # the producer's own data: accepted, never landed (compatibility policy)
    if event["event_type"] == "click":
        ip = event.pop("ip", None)
        event["ip_hash"] = ip_hasher(ip) if (ip and ip_hasher) else None
    return event


def validate_event(raw: bytes, topic_table: str, ip_hasher=None, latest_us: int = NO_LIMIT,
                   max_future_seconds: int = 0) -> dict:
    """The landing row of one message, or ContractError (the dead letter's reason). `topic_table`:
    the topic the message came on, named by the landing table it feeds (clicks, orders, refunds;
    see TOPIC_OF_TYPE). `latest_us`: the latest acceptable `occurred_at` (capture time +
    `max_future_seconds`), see `to_row`."""
    event = parse_event(raw)
    expected = TOPIC_OF_TYPE[event["event_type"]]
    if expected != topic_table:
        raise ContractError(
            f"event_type {event['event_type']!r} belongs on the {expected} topic, not the {topic_table} topic"
        )
    return to_row(event, ip_hasher, latest_us, max_future_seconds)


# ---- dead-letter reasons, by code (filters of `o2p deadletters`, counts of `capture --status`) ----
# Every reason capture writes is built here or in the sink with these words; a code is derived from
# the text, so dead letters landed before the codes existed have one too. In order: the first match wins.
REASON_CODES: tuple[tuple[str, str], ...] = (
    ("empty", "empty message (no value)"),
    ("oversized", "exceeds capture.max_message_bytes"),
    ("not_json", "not valid UTF-8 JSON"),
    ("not_object", "the event must be a JSON object"),
    ("unknown_event_type", "event_type "),         # "unknown event_type 'x'", "no event_type (expected …"
    ("wrong_topic", " topic, not the "),
    ("occurred_in_future", "occurred_in_future:"),
    ("unsupported_schema_version", "unsupported_schema_version:"),
    ("bad_timestamp", "occurred_at: "),
    ("unknown_field", ": unknown field"),
    ("missing_field", ": required field missing"),
    ("cross_field_rule", "!= quantity × unit_price_fen − discount_fen"),
    ("cross_field_rule", "line_id values repeat within the order"),
)
REASONS = tuple(dict.fromkeys(code for code, _ in REASON_CODES)) + ("invalid_value",)


def reason_code(reason: str) -> str:
    """The code of a dead letter's reason (one of REASONS; `invalid_value` when no other fits: a
    wrong type, an out-of-range number, a value outside an enum)."""
    head = reason.split("; ", 1)[0]
    for code, words in REASON_CODES:
        if code == "unknown_event_type":
            if head.startswith(("unknown event_type ", "no event_type ")):
                return code
        elif code in ("occurred_in_future", "unsupported_schema_version"):
            if words in reason:
                return code
        elif words in head:
            return code
    return "invalid_value"
