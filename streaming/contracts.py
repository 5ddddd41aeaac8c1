"""Event contracts (rulebook §1): the single source of truth for producers and the capture consumer.

`validate_event(raw_bytes, topic_kind)` returns a flat row for the landing
zone or raises `ContractError` with a reason a person can act on. The JSON
Schema that upstream teams read is generated from these models
(`o2p contracts` / `event_json_schema()`).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from o2p.timeutil import parse_rfc3339, shanghai_date, to_us

Id = Annotated[str, Field(min_length=1, max_length=64)]
Fen = Annotated[int, Field(ge=0, le=10**13)]
CHANNELS = ("moments", "group", "private_chat", "mini_program", "live", "bot_push")
EVENT_TYPES = ("click", "order_paid", "order_confirmed", "order_cancelled", "refund")
TOPIC_OF_TYPE = {
    "click": "clicks",
    "order_paid": "orders",
    "order_confirmed": "orders",
    "order_cancelled": "orders",
    "refund": "refunds",
}


class ContractError(ValueError):
    """The event breaks the contract; the message is the dead letter's reason."""


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    event_id: Id
    occurred_at: str = Field(description="RFC 3339 with an offset, e.g. 2026-11-30T23:30:00+08:00")
    source: Literal["storefront", "bot"]
    schema_version: Literal[1]

    @field_validator("occurred_at")
    @classmethod
    def _rfc3339(cls, v: str) -> str:
        dt = parse_rfc3339(v)
        if not 2000 <= dt.year <= 2100:
            raise ValueError(f"{v!r} is outside the years 2000-2100")
        return v


class Click(_Event):
    event_type: Literal["click"]
    promoter_id: Id
    share_id: Id
    buyer_id: Id
    device_id: Id
    sku_id: Id
    channel: Literal["moments", "group", "private_chat", "mini_program", "live", "bot_push"]
    user_agent: Annotated[str, Field(max_length=2048)] | None = None
    ip: Annotated[str, Field(max_length=64)] | None = None


class OrderLine(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    line_id: Id
    sku_id: Id
    quantity: Annotated[int, Field(ge=1, le=100000)]
    unit_price_fen: Fen
    discount_fen: Fen
    paid_fen: Fen

    @model_validator(mode="after")
    def _arithmetic(self) -> OrderLine:
        expected = self.quantity * self.unit_price_fen - self.discount_fen
        if self.paid_fen != expected:
            raise ValueError(
                f"line {self.line_id}: paid_fen {self.paid_fen} != quantity × unit_price_fen − "
                f"discount_fen = {expected}"
            )
        return self


class OrderPaid(_Event):
    event_type: Literal["order_paid"]
    order_id: Id
    buyer_id: Id
    share_id: Id | None = None
    currency: Literal["CNY"]
    lines: Annotated[list[OrderLine], Field(min_length=1, max_length=500)]

    @field_validator("lines")
    @classmethod
    def _unique_lines(cls, v: list[OrderLine]) -> list[OrderLine]:
        ids = [line.line_id for line in v]
        if len(set(ids)) != len(ids):
            raise ValueError("line_id values repeat within the order")
        return v


class OrderConfirmed(_Event):
    event_type: Literal["order_confirmed"]
    order_id: Id


class OrderCancelled(_Event):
    event_type: Literal["order_cancelled"]
    order_id: Id


class Refund(_Event):
    event_type: Literal["refund"]
    refund_id: Id
    order_id: Id
    line_id: Id
    amount_fen: Annotated[int, Field(gt=0, le=10**13)]


AnyEvent = Annotated[
    Click | OrderPaid | OrderConfirmed | OrderCancelled | Refund,
    Field(discriminator="event_type"),
]
_ADAPTER: TypeAdapter[Any] = TypeAdapter(AnyEvent)


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
        elif err["type"] == "missing":
            msg = "required field missing"
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


def parse_event(raw: bytes) -> BaseModel:
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ContractError(f"not valid UTF-8 JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ContractError(f"the event must be a JSON object, got {type(data).__name__}")
    etype = data.get("event_type")
    if etype not in EVENT_TYPES:
        raise ContractError(f"unknown event_type {etype!r} (expected one of {', '.join(EVENT_TYPES)})")
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise ContractError(f"{etype}: {_reason(exc)}") from None


def to_row(event: BaseModel, ip_hasher=None) -> dict:
    """A flat landing-zone row: the original timestamp text plus its instant and Shanghai date."""
    us = to_us(parse_rfc3339(event.occurred_at))
    row = event.model_dump()
    row["occurred_at_us"] = us
    row["event_date"] = shanghai_date(us).isoformat()
    if isinstance(event, Click):
        ip = row.pop("ip")
        row["ip_hash"] = ip_hasher(ip) if (ip and ip_hasher) else None
    return row


def validate_event(raw: bytes, topic_kind: str, ip_hasher=None) -> dict:
    event = parse_event(raw)
    expected = TOPIC_OF_TYPE[event.event_type]
    if expected != topic_kind:
        raise ContractError(
            f"event_type {event.event_type!r} belongs on the {expected} topic, not the {topic_kind} topic"
        )
    return to_row(event, ip_hasher)
