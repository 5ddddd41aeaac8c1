"""Hypothesis strategies for events: valid ones of every type, and a corpus of malformed messages
with every flaw the contract refuses (rulebook §1). Each bad strategy breaks the contract by
construction; the tests check that it is refused for a reason, and that the good ones pass."""

import json
import re
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import strategies as st

from o2p.timeutil import RFC3339
from streaming.contracts import CHANNELS, EVENT_TYPES, TOPIC_OF_TYPE

ids = st.text(min_size=1, max_size=64)
fen = st.integers(min_value=0, max_value=10**9)


# Valid events happened in the past: capture refuses an occurred_at more than
# quality.max_future_seconds after its capture time (`future` below).
PAST = (datetime(2000, 1, 2), datetime(2026, 11, 1))
FUTURE = (datetime(2090, 1, 1), datetime(2100, 12, 30))   # within the contract's years 2000-2100


@st.composite
def timestamps(draw, between=PAST) -> str:
    instant = draw(st.datetimes(min_value=between[0], max_value=between[1]))
    offset_min = draw(st.sampled_from([0, 480, -300, 345, 60 * 14, -60 * 12]))
    dt = instant.replace(tzinfo=UTC).astimezone(timezone(timedelta(minutes=offset_min)))
    text = dt.isoformat(timespec=draw(st.sampled_from(["seconds", "milliseconds", "microseconds"])))
    return text[:-6] + "Z" if offset_min == 0 and draw(st.booleans()) else text


def _base(draw, etype):
    return {"event_id": draw(ids), "event_type": etype, "occurred_at": draw(timestamps()),
            "source": draw(st.sampled_from(["storefront", "bot"])), "schema_version": 1}


@st.composite
def lines(draw):
    out = []
    for i in range(draw(st.integers(1, 4))):
        q, price = draw(st.integers(1, 50)), draw(fen)
        disc = draw(st.integers(0, q * price))
        out.append({"line_id": f"L{i}", "sku_id": draw(ids), "quantity": q, "unit_price_fen": price,
                    "discount_fen": disc, "paid_fen": q * price - disc})
    return out


@st.composite
def valid_events(draw, etype=None):
    etype = etype or draw(st.sampled_from(EVENT_TYPES))
    e = _base(draw, etype)
    if etype == "click":
        e.update(promoter_id=draw(ids), share_id=draw(ids), buyer_id=draw(ids), device_id=draw(ids),
                 sku_id=draw(ids), channel=draw(st.sampled_from(CHANNELS)))
        if draw(st.booleans()):
            e["user_agent"] = draw(st.none() | st.text(max_size=200))
        if draw(st.booleans()):
            e["ip"] = draw(st.none() | personal_ips())
    elif etype == "order_paid":
        e.update(order_id=draw(ids), buyer_id=draw(ids), currency="CNY", lines=draw(lines()))
        if draw(st.booleans()):
            e["share_id"] = draw(st.none() | ids)
    elif etype == "refund":
        e.update(refund_id=draw(ids), order_id=draw(ids), line_id=draw(ids),
                 amount_fen=draw(st.integers(1, 10**9)))
    else:
        e["order_id"] = draw(ids)
    return e


def personal_ips():
    """IP addresses as a producer writes them (IPv4, IPv6, IPv4-mapped IPv6); not `::`, which is
    nobody's address and too common as plain punctuation for the dead-letter masking to touch."""
    return st.ip_addresses().map(str).filter(lambda ip: ip != "::")


def encode(event) -> bytes:
    return json.dumps(event, ensure_ascii=False).encode("utf-8")


REQUIRED = {
    "click": ["event_id", "occurred_at", "source", "schema_version", "promoter_id", "share_id", "buyer_id",
              "device_id", "sku_id", "channel"],
    "order_paid": ["event_id", "occurred_at", "source", "schema_version", "order_id", "buyer_id", "currency", "lines"],
    "order_confirmed": ["event_id", "occurred_at", "source", "schema_version", "order_id"],
    "order_cancelled": ["event_id", "occurred_at", "source", "schema_version", "order_id"],
    "refund": ["event_id", "occurred_at", "source", "schema_version", "refund_id", "order_id", "line_id", "amount_fen"],
}
INT_FIELDS = {"schema_version", "amount_fen"}
_RFC = re.compile(RFC3339)   # the contract's own pattern: these must not match it


def _topic_table(e) -> str:
    return TOPIC_OF_TYPE[e["event_type"]]


@st.composite
def malformed(draw, max_message_bytes: int | None = None):
    """(topic table, raw bytes, what is wrong) — every one of them must become a dead letter."""
    how = draw(st.sampled_from(["bytes", "not_object", "wrong_type", "missing", "timestamp", "negative",
                                "arithmetic", "unknown_type", "wrong_topic", "extra_field", "enum",
                                "currency", "future", "ip_text"] + (["oversized"] if max_message_bytes else [])))
    e = draw(valid_events())
    if how == "bytes":
        raw = draw(st.binary(min_size=0, max_size=300))
        return draw(st.sampled_from(["clicks", "orders", "refunds"])), raw, how
    if how == "not_object":
        v = draw(st.one_of(st.integers(), st.text(max_size=20), st.lists(st.integers(), max_size=3), st.none()))
        return _topic_table(e), json.dumps(v).encode(), how
    if how == "wrong_type":
        field = draw(st.sampled_from(REQUIRED[e["event_type"]]))
        if field in INT_FIELDS:
            bad = draw(st.one_of(st.text(max_size=5), st.just(2.5), st.booleans(), st.lists(st.integers(), max_size=2)))
        elif field == "lines":
            bad = draw(st.one_of(st.text(max_size=5), st.integers(), st.just({})))
        else:
            bad = draw(st.one_of(st.integers(), st.just(2.5), st.booleans(), st.lists(st.text(max_size=3), max_size=2),
                                 st.just({"x": 1})))
        e[field] = bad
    elif how == "missing":
        del e[draw(st.sampled_from(REQUIRED[e["event_type"]]))]
    elif how == "timestamp":
        e["occurred_at"] = draw(st.one_of(
            st.text(max_size=30).filter(lambda t: not _RFC.match(t)),
            st.just(e["occurred_at"][:19]),                       # naive
            st.sampled_from(["2026-02-30T10:00:00+08:00", "2026-13-01T00:00:00Z", "2026-10-01T24:00:00+08:00",
                             "1999-12-31T12:00:00+08:00", "2026-10-01T10:00:00+0800", "2026-W40-1T00:00:00Z",
                             "２０２６-10-01T10:00:00+08:00", "2026-10-01T10:00:00+08"]),
            st.integers(min_value=0, max_value=2**40)))
    elif how == "negative":
        e = draw(valid_events(draw(st.sampled_from(["refund", "order_paid"]))))
        if e["event_type"] == "refund":
            e["amount_fen"] = draw(st.integers(-10**9, 0))
        else:
            line = e["lines"][0]
            which = draw(st.sampled_from(["quantity", "unit_price_fen", "discount_fen", "paid_fen"]))
            line[which] = draw(st.integers(-10**6, -1 if which != "quantity" else 0))
    elif how == "arithmetic":
        e = draw(valid_events("order_paid"))
        line = draw(st.sampled_from(e["lines"]))
        line["paid_fen"] += draw(st.integers(1, 10**6)) * draw(st.sampled_from([1, -1]))
        if line["paid_fen"] < 0:
            line["paid_fen"] = line["quantity"] * line["unit_price_fen"] - line["discount_fen"] + 1
    elif how == "unknown_type":
        topic_table = _topic_table(e)
        e["event_type"] = draw(st.text(max_size=20).filter(lambda t: t not in EVENT_TYPES))
        return topic_table, encode(e), how
    elif how == "wrong_topic":
        topic_table = draw(st.sampled_from([k for k in ("clicks", "orders", "refunds") if k != _topic_table(e)]))
        return topic_table, encode(e), how
    elif how == "extra_field":
        e[draw(st.text(min_size=1, max_size=10).filter(lambda k: k not in e and k not in ("ip", "user_agent", "share_id")))] = 1
    elif how == "enum":
        field = draw(st.sampled_from(["source"] + (["channel"] if e["event_type"] == "click" else [])))
        e[field] = draw(st.text(max_size=12).filter(lambda t: t not in CHANNELS and t not in ("storefront", "bot")))
    elif how == "future":     # dated long after any capture time: occurred_in_future
        e["occurred_at"] = draw(timestamps(FUTURE))
    elif how == "ip_text":    # free text (not JSON, maybe not UTF-8) quoting a buyer's IP address
        ip = draw(personal_ips())
        junk = draw(st.sampled_from([b"", b"\xff\xfe", "买家".encode("gbk"), b"\x00\x81"]))
        raw = junk + draw(st.sampled_from([b"GET /s?ip=%s HTTP/1.1", b"client %s refused", b"[%s]:443 {"])) % ip.encode()
        return _topic_table(e), raw, how
    elif how == "currency":
        e = draw(valid_events("order_paid"))
        e["currency"] = draw(st.sampled_from(["USD", "cny", "RMB", "", "HKD"]))
    elif how == "oversized":
        e = draw(valid_events("order_paid"))
        n = max_message_bytes // 90 + 1
        e["lines"] = [{"line_id": f"L{i:05d}", "sku_id": f"SKU-{i:08d}", "quantity": 1, "unit_price_fen": 100,
                       "discount_fen": 0, "paid_fen": 100} for i in range(min(n, 500))]
        raw = encode(e)
        assert len(raw) > max_message_bytes
        return "orders", raw, how
    return _topic_table(e), encode(e), how
