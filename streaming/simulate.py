"""Synthetic traffic (`o2p simulate`): a small, seeded world of promoters, products, rules and
a month of clicks, orders, confirmations, cancellations and refunds from storefronts and bots,
with the mess real producers make: bot user agents, flooding devices (some straddling
midnight), producer retries that repeat an event (same event_id), late events published after
newer ones, and a configurable share of malformed messages with every flaw the contract refuses.

Volume: `orders` drives everything (about `clicks_per_order` clicks, 0.7 status events and 0.1
refunds per order); `o2p simulate --orders 250000` gives about a million events."""

from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from o2p.reference import PRODUCT_COLUMNS, PROMOTER_COLUMNS, RULE_COLUMNS
from o2p.timeutil import SHANGHAI
from streaming.contracts import CHANNELS

BOT_UAS = ["Mozilla/5.0 (compatible; Googlebot/2.1)", "python-requests/2.31", "curl/8.4.0", "HeadlessChrome/120"]
HUMAN_UAS = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) MicroMessenger/8.0.44",
    "Mozilla/5.0 (Linux; Android 14) MicroMessenger/8.0.43 MiniProgramEnv/android",
]


@dataclass
class World:
    events: list[dict]                   # in publish order (by time, with retries and late ones)
    malformed: list[tuple[str, bytes]]   # (topic table, raw message) for the dead-letter path
    promoters: list[dict]
    products: list[dict]
    rules: list[dict]


def _ts(dt: datetime) -> str:
    return dt.isoformat(timespec="microseconds")


def build_world(month: str = "2026-10", *, promoters: int = 40, buyers: int = 300,
                orders: int = 400, clicks_per_order: float = 3.0, malformed_share: float = 0.01,
                duplicate_share: float = 0.03, late_share: float = 0.01, flood_devices: int | None = None,
                seed: int = 7) -> World:
    rng = random.Random(seed)
    y, m = map(int, month.split("-"))
    start = datetime(y, m, 1, tzinfo=SHANGHAI)
    days = ((datetime(y + (m == 12), m % 12 + 1, 1, tzinfo=SHANGHAI) - start).days)

    prom_rows = []
    for i in range(promoters):
        pid = f"P{i:04d}"
        upline = f"P{rng.randrange(i):04d}" if i > 0 and rng.random() < 0.6 else ""
        suspended = ""
        if i % 17 == 16:
            suspended = _ts(start + timedelta(days=rng.randrange(5, days)))
        prom_rows.append({
            "promoter_id": pid, "upline_id": upline, "tier": rng.choice(["bronze", "silver", "gold"]),
            "buyer_id": f"B{promoters * 1000 + i}", "payee_openid": "" if i % 13 == 12 else f"oW{i:06d}x",
            "payee_name": f"推客{i:03d}", "joined_at": _ts(start - timedelta(days=90)), "suspended_at": suspended,
        })
    products = []
    for s in range(30):
        products.append({"sku_id": f"SKU{s:03d}", "product_id": f"PR{s // 2:03d}",
                         "brand": f"brand{s % 4}", "category": ["beauty", "food", "home"][s % 3]})
    rules = [
        {"rule_id": "R-default", "scope": "default", "scope_value": "", "rate": "0.0500",
         "effective_from": "2025-01-01T00:00:00+08:00", "effective_to": ""},
        {"rule_id": "R-beauty", "scope": "category", "scope_value": "beauty", "rate": "0.1000",
         "effective_from": "2025-01-01T00:00:00+08:00", "effective_to": ""},
        {"rule_id": "R-brand1", "scope": "brand", "scope_value": "brand1", "rate": "0.0800",
         "effective_from": "2025-01-01T00:00:00+08:00", "effective_to": ""},
        {"rule_id": "R-sku7", "scope": "sku", "scope_value": "SKU007", "rate": "0.2000",
         "effective_from": _ts(start + timedelta(days=10)), "effective_to": ""},
    ]
    price = {p["sku_id"]: rng.choice([990, 1990, 4990, 9900, 19900, 29900]) for p in products}

    events: list[dict] = []
    n = 0

    def eid(prefix: str) -> str:
        nonlocal n
        n += 1
        return f"{prefix}-{seed}-{n:08d}"

    buyer_ids = [f"B{b}" for b in range(buyers)] + [p["buyer_id"] for p in prom_rows[:5]]
    for _ in range(orders):
        buyer = rng.choice(buyer_ids)
        paid_at = start + timedelta(seconds=rng.randrange(86400, days * 86400))
        share_id = None
        source = rng.choice(["storefront", "storefront", "bot"])
        for _c in range(max(1, int(rng.expovariate(1 / clicks_per_order)))):
            promoter = rng.choice(prom_rows)
            share = f"S{promoter['promoter_id']}-{rng.randrange(50)}"
            at = paid_at - timedelta(seconds=rng.randrange(0, 9 * 86400))
            bot = rng.random() < 0.05
            click = {
                "event_id": eid("c"), "event_type": "click", "occurred_at": _ts(at), "source": source,
                "schema_version": 1, "promoter_id": promoter["promoter_id"], "share_id": share,
                "buyer_id": buyer, "device_id": f"D{buyer}", "sku_id": rng.choice(products)["sku_id"],
                "channel": rng.choice(CHANNELS),
                "user_agent": rng.choice(BOT_UAS if bot else HUMAN_UAS),
                "ip": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
            }
            events.append(click)
            if rng.random() < 0.4:
                share_id = share
        lines = []
        for li in range(rng.choice([1, 1, 1, 2, 3])):
            sku = rng.choice(products)["sku_id"]
            q = rng.choice([1, 1, 2, 3])
            disc = rng.choice([0, 0, 100, 500]) if q * price[sku] > 500 else 0
            lines.append({"line_id": f"L{li + 1}", "sku_id": sku, "quantity": q,
                          "unit_price_fen": price[sku], "discount_fen": disc,
                          "paid_fen": q * price[sku] - disc})
        order_id = f"O{seed}-{n:08d}"
        order = {"event_id": eid("o"), "event_type": "order_paid", "occurred_at": _ts(paid_at),
                 "source": source, "schema_version": 1, "order_id": order_id, "buyer_id": buyer,
                 "share_id": share_id, "currency": "CNY", "lines": lines}
        events.append(order)
        r = rng.random()
        if r < 0.05:
            events.append({"event_id": eid("x"), "event_type": "order_cancelled",
                           "occurred_at": _ts(paid_at + timedelta(hours=rng.randrange(1, 48))),
                           "source": source, "schema_version": 1, "order_id": order_id})
        elif r < 0.7:
            events.append({"event_id": eid("k"), "event_type": "order_confirmed",
                           "occurred_at": _ts(paid_at + timedelta(days=rng.randrange(1, 9))),
                           "source": source, "schema_version": 1, "order_id": order_id})
        if r >= 0.05 and rng.random() < 0.1:
            line = rng.choice(lines)
            if line["paid_fen"] > 0:
                events.append({"event_id": eid("r"), "event_type": "refund",
                               "occurred_at": _ts(paid_at + timedelta(days=rng.randrange(1, 12))),
                               "source": source, "schema_version": 1, "refund_id": f"RF{n}",
                               "order_id": order_id, "line_id": line["line_id"],
                               "amount_fen": rng.randrange(1, line["paid_fen"] + 1)})
    # flooding devices: 30 clicks of one device within half a minute; every other one straddles
    # midnight (Asia/Shanghai), so the ±60 s window crosses a day partition
    for f in range(flood_devices if flood_devices is not None else max(1, orders // 2000)):
        day = start + timedelta(days=1 + f % (days - 1))
        flood_at = day - timedelta(seconds=15) if f % 2 else day + timedelta(hours=20)
        promoter = rng.choice(prom_rows)["promoter_id"]
        for k in range(30):
            events.append({"event_id": eid("c"), "event_type": "click",
                           "occurred_at": _ts(flood_at + timedelta(seconds=k)), "source": "bot",
                           "schema_version": 1, "promoter_id": promoter, "share_id": f"S{promoter}-flood{f}",
                           "buyer_id": f"B{k % 3}", "device_id": f"D-flood{f}", "sku_id": "SKU001",
                           "channel": "bot_push"})
    events.sort(key=lambda e: e["occurred_at"])
    # producer retries: the same event (same event_id) published again right after
    retried: list[dict] = []
    for e in events:
        retried.append(e)
        if rng.random() < duplicate_share:
            retried.append(dict(e))
    # late events: published after everything newer (a storefront that was offline)
    late = [e for e in retried if rng.random() < late_share]
    late_ids = {id(e) for e in late}
    events = [e for e in retried if id(e) not in late_ids] + late
    malformed = [_malformed(k, rng, events) for k in range(int(len(events) * malformed_share))]
    return World(events, malformed, prom_rows, products, rules)


_VALID = {"event_id": "bad", "event_type": "order_paid", "occurred_at": "2026-10-05T12:00:00+08:00",
          "source": "storefront", "schema_version": 1, "order_id": "O-bad", "buyer_id": "B1",
          "share_id": None, "currency": "CNY",
          "lines": [{"line_id": "L1", "sku_id": "SKU001", "quantity": 2, "unit_price_fen": 990,
                     "discount_fen": 0, "paid_fen": 1980}]}


def messages(world: World):
    """The publish order: the events, with the malformed messages spread evenly among them.
    Yields ("event", dict) or (topic table, raw bytes): the table names the topic, as in
    `contracts.TOPIC_OF_TYPE`."""
    n, bad = len(world.events), len(world.malformed)
    step = n // (bad + 1) if bad else n + 1
    j = 0
    for i, e in enumerate(world.events):
        if j < bad and i == (j + 1) * step:
            yield world.malformed[j]
            j += 1
        yield "event", e
    yield from world.malformed[j:]


def _malformed(k: int, rng: random.Random, events: list[dict]) -> tuple[str, bytes]:
    """The k-th malformed message, cycling through what storefronts and bots get wrong."""
    bad = {**_VALID, "event_id": f"bad-{k}"}
    flaw = k % 10
    if flaw == 0:
        return "orders", b"{not json"
    if flaw == 1:
        return "orders", json.dumps({**bad, "event_type": "teleport"}).encode()
    if flaw == 2:
        return "orders", json.dumps({**bad, "currency": "USD"}).encode()
    if flaw == 3:
        return "clicks", json.dumps({**bad, "event_type": "click", "occurred_at": "yesterday"}).encode()
    if flaw == 4:   # paid_fen arithmetic broken
        line = {**bad["lines"][0], "paid_fen": 1990}
        return "orders", json.dumps({**bad, "lines": [line]}).encode()
    if flaw == 5:
        return "refunds", json.dumps({**bad, "event_type": "refund", "refund_id": f"RF-bad-{k}",
                                      "line_id": "L1", "amount_fen": -100}).encode()
    if flaw == 6:   # no offset on the timestamp
        return "orders", json.dumps({**bad, "occurred_at": "2026-10-05T12:00:00"}).encode()
    if flaw == 7:   # a required field missing
        return "orders", json.dumps({k2: v for k2, v in bad.items() if k2 != "buyer_id"}).encode()
    if flaw == 8:   # an order event on the clicks topic
        return "clicks", json.dumps(bad).encode()
    return "orders", rng.randbytes(rng.randrange(1, 64))


def write_reference(world: World, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, cols, rows in (("promoters.csv", PROMOTER_COLUMNS, world.promoters),
                             ("products.csv", PRODUCT_COLUMNS, world.products),
                             ("commission_rules.csv", RULE_COLUMNS, world.rules)):
        with open(directory / name, "w", encoding="utf-8", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=cols)
            w.writeheader()
            w.writerows(rows)
