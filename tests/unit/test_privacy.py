"""Rulebook §1 (v2): raw IPs are personal data — only a salted hash may be stored, in dead letters
too. Pure functions here (events from the future: test_contracts.py); the sink (Parquet rows and
the dead-letter topic) is in capture/test_sink_dead_letters.py, the real broker in
tests/integration/test_capture.py."""

import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from o2p.timeutil import parse_rfc3339, to_us
from streaming.contracts import ContractError, validate_event
from streaming.privacy import IpMasker
from tests.corpus import encode, personal_ips


def hasher(ip: str) -> str:
    return hashlib.sha256(b"unit-salt\x00" + ip.encode()).hexdigest()


M = IpMasker(hasher)


def mask(ip: str) -> str:
    return "ip-masked:" + hasher(ip)[:12]


# ---- masking -----------------------------------------------------------------

@pytest.mark.parametrize("ip", [
    "203.0.113.99",
    "0.0.0.0",
    "255.255.255.255",
    "2001:0db8:0000:0000:0000:ff00:0042:8329",      # IPv6, full
    "2001:db8::1",                                  # compressed
    "2001:DB8::A:1",                                # upper case
    "::1",
    "fe80::1",
    "::ffff:203.0.113.9",                           # IPv4-mapped IPv6
    "64:ff9b::198.51.100.7",                        # NAT64, dotted tail
])
def test_an_ip_is_replaced_by_a_mask_naming_its_salted_hash(ip):
    raw = json.dumps({"event_type": "click", "ip": ip, "user_agent": "Mozilla/5.0"}).encode()
    out = M.bytes(raw)
    assert ip.encode() not in out
    assert out == raw.replace(ip.encode(), mask(ip).encode())
    assert M.text(raw.decode()) == out.decode()


@pytest.mark.parametrize("text, ips", [
    ("203.0.113.9:8080", ["203.0.113.9"]),                         # with a port
    ("[2001:db8::1]:443", ["2001:db8::1"]),
    ("ip:2001:db8::5 refused", ["2001:db8::5"]),                    # a colon glued before
    ("from 2001:db8::6.", ["2001:db8::6"]),                         # a full stop after
    ("from 203.0.113.7.", ["203.0.113.7"]),
    ("x=abc198.51.100.3", ["198.51.100.3"]),                        # hex letters glued before
    ("010.000.001.002", ["010.000.001.002"]),                       # leading zeros (ipaddress refuses)
    ("host.203.0.113.9", ["203.0.113.9"]),                          # a dot glued before (a host name)
    ("x..10.0.0.1", ["10.0.0.1"]),
])
def test_ips_are_found_inside_punctuation(text, ips):
    out = M.text(text)
    for ip in ips:
        assert ip not in out and mask(ip) in out


def test_several_ips_in_one_message_each_get_their_own_mask_and_one_ip_always_the_same():
    raw = (b'{"ip": "203.0.113.9", "via": "198.51.100.23", "v6": "2001:db8::1", "again": "203.0.113.9", '
           b'"mapped": "::ffff:203.0.113.9", "occurred_at": "2026-11-30T10:00:00+08:00"}')
    out = M.bytes(raw)
    for ip in ("203.0.113.9", "198.51.100.23", "2001:db8::1", "::ffff:203.0.113.9"):
        assert mask(ip).encode() in out
    assert b"203.0.113" not in out and b"198.51.100" not in out and b"2001:db8" not in out
    assert out.count(mask("203.0.113.9").encode()) == 2
    assert len({mask(ip) for ip in ("203.0.113.9", "198.51.100.23", "2001:db8::1", "::ffff:203.0.113.9")}) == 4
    assert b'"occurred_at": "2026-11-30T10:00:00+08:00"' in out
    assert json.loads(out)["again"] == mask("203.0.113.9")     # still JSON: the mask is plain ASCII


def test_the_mask_lets_a_dead_letter_be_matched_with_valid_clicks_ip_hash():
    row = validate_event(encode({"event_id": "c", "event_type": "click", "occurred_at": "2026-11-30T10:00:00+08:00",
                                 "source": "bot", "schema_version": 1, "promoter_id": "P", "share_id": "S",
                                 "buyer_id": "B", "device_id": "D", "sku_id": "K", "channel": "group",
                                 "ip": "203.0.113.9"}), "clicks", hasher)
    assert M.text("203.0.113.9") == "ip-masked:" + row["ip_hash"][:12]


@pytest.mark.parametrize("raw", [
    b"\xff\xfe\x00\x81 client 203.0.113.9 \xc3(",                  # not UTF-8 at all
    "买家 203.0.113.9 的点击".encode("gbk"),                         # GBK, as Excel on Chinese Windows
    "买家 203.0.113.9 的点击".encode("gb18030"),
    b'{"ip": "203.0.113.9", "x": "\xed\xa0\x80"}',                 # a lone surrogate in UTF-8
    "ip 203.0.113.9 é".encode("latin-1"),
    '{"ip": "203.0.113.9"}'.encode("utf-16"),                      # UTF-16: ASCII between NULs
    '{"ip": "203.0.113.9"}'.encode("utf-16-be"),
    b"\x00" + '{"ip": "203.0.113.9"}'.encode("utf-16-le"),         # misaligned by one byte
])
def test_undecodable_payloads_are_masked_where_they_hold_an_ascii_ip(raw):
    out = M.bytes(raw)
    flat = out.replace(b"\x00", b"")
    assert b"203.0.113.9" not in flat
    assert mask("203.0.113.9").encode() in flat
    # the bytes around the address are untouched
    head = raw.replace(b"\x00", b"").split(b"203.0.113.9")[0]
    assert flat.startswith(head)


@pytest.mark.parametrize("text", [
    "2026-11-30T10:00:00+08:00",
    "10:00:00",
    "at 10:00:00.123456 and 23:59:59",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0.6099.109 Safari/537.36",
    "MicroMessenger/8.0.47.2560(0x28002F30) NetType/WIFI",
    "version 1.2.3",
    "1.2.3",
    "999.1.1.1",
    "1.2.3.4.5",
    "256.256.256.256",
    "aa:bb:cc:dd:ee:ff",                          # a MAC address
    "std::vector and ::",                         # `::` alone is nobody's address
    "order O-20261130:L1:2",
    "paid_fen 1990 != quantity × unit_price_fen − discount_fen = 1980",
    "ip-masked:0123456789ab",                     # masking twice changes nothing
])
def test_what_is_not_an_ip_is_left_alone(text):
    assert M.text(text) == text
    assert M.bytes(text.encode()) == text.encode()


def test_none_and_empty_stay_as_they_are():
    assert M.bytes(None) is None and M.bytes(b"") == b"" and M.text(None) is None and M.text("") == ""


@settings(max_examples=300, deadline=None)
@given(ip=personal_ips(), before=st.sampled_from([b"", b" ", b'"', b"ip=", b"\xff", b"[", b"(", b"\n"]),
       after=st.sampled_from([b"", b" ", b'"', b",", b"]:80", b".", b")", b"\xfe", b"\n"]))
def test_any_address_is_masked_whatever_surrounds_it(ip, before, after):
    out = M.bytes(before + ip.encode() + after)
    assert ip.encode() not in out and mask(ip).encode() in out


# ---- reasons never quote the ip field ----------------------------------------------

CAPTURED = to_us(parse_rfc3339("2026-12-01T10:00:00+08:00"))
MAX_FUTURE = 300
LATEST = CAPTURED + MAX_FUTURE * 1_000_000


def _click(**kw) -> bytes:
    e = {"event_id": "c1", "event_type": "click", "occurred_at": "2026-11-30T23:30:00+08:00", "source": "bot",
         "schema_version": 1, "promoter_id": "P", "share_id": "S", "buyer_id": "B", "device_id": "D",
         "sku_id": "K", "channel": "group", "ip": "203.0.113.9"}
    e.update(kw)
    return json.dumps({k: v for k, v in e.items() if v is not ...}).encode()


IP = "203.0.113.9"


@pytest.mark.parametrize("raw, topic_table", [
    (_click(ip=IP * 6), "clicks"),                                  # too long (> 64)
    (_click(ip=[IP]), "clicks"),
    (_click(ip={"v4": IP}), "clicks"),
    (_click(ip=2030113009), "clicks"),
    (_click(ip=IP + " " * 60, channel="tv", source="pc", buyer_id=...), "clicks"),   # several errors
    (_click(channel="tv"), "clicks"),                               # the ip is fine, something else is not
    (_click(occurred_at="2026-11-30T23:30:00"), "clicks"),
    (_click(), "orders"),                                           # wrong topic
    (_click(event_type="order_confirmed", order_id="O"), "orders"),  # ip is an unknown field there
    (_click(event_type="order_paid"), "orders"),
    (_click(extra=IP + "x" * 70), "clicks"),
    (_click(ip=IP, schema_version=True), "clicks"),
    (_click()[:-5], "clicks"),                                       # broken JSON
    (_click(ip="\ud800" + IP), "clicks"),                            # a lone surrogate in the ip
])
def test_no_reason_quotes_the_ip_field(raw, topic_table):
    with pytest.raises(ContractError) as exc:
        validate_event(raw, topic_table, hasher, LATEST, MAX_FUTURE)
    assert IP not in str(exc.value) and "203" not in str(exc.value), str(exc.value)
