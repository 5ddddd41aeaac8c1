"""Synthetic traffic (`o2p simulate`): a small, seeded world of promoters, products, rules and
a month of clicks, orders, confirmations, cancellations and refunds from storefronts and bots,
with the mess real producers make: bot user agents, flooding devices, retried duplicates and a
share of malformed messages."""

from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from o2p.reference import PRODUCT_COLUMNS, PROMOTER_COLUMNS, RULE_COLUMNS
from o2p.timeutil import SHANGHAI

CHANNELS = ["moments", "group", "private_chat", "mini_program", "live", "bot_push"]
BOT_UAS = ["Mozilla/5.0 (compatible; Googlebot/2.1)", "python-requests/2.31", "curl/8.4.0", "HeadlessChrome/120"]
HUMAN_UAS = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) MicroMessenger/8.0.44",
    "Mozilla/5.0 (Linux; Android 14) MicroMessenger/8.0.43 MiniProgramEnv/android",
]


@dataclass
class World:
    events: list[dict]          # in publish order (roughly by time, with duplicates)
    malformed: list[bytes]      # raw messages for the dead-letter path
    promoters: list[dict]
    products: list[dict]
    rules: list[dict]


def _ts(dt: datetime) -> str:
    return dt.isoformat(timespec="microseconds")


def build_world(month: str = "2026-10", *, promoters: int = 40, buyers: int = 300,
                orders: int = 400, clicks_per_order: float = 3.0, malformed_share: float = 0.01,
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
        if rng.random() < 0.03:
            events.append(dict(order))  # a producer retry: same event_id
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
    # a flooding device: 30 clicks within a minute
    flood_at = start + timedelta(days=3, hours=20)
    for k in range(30):
        events.append({"event_id": eid("c"), "event_type": "click",
                       "occurred_at": _ts(flood_at + timedelta(seconds=k)), "source": "bot",
                       "schema_version": 1, "promoter_id": "P0001", "share_id": "SP0001-flood",
                       "buyer_id": f"B{k % 3}", "device_id": "D-flood", "sku_id": "SKU001",
                       "channel": "bot_push"})
    events.sort(key=lambda e: e["occurred_at"])
    malformed = []
    n_bad = int(len(events) * malformed_share)
    for k in range(n_bad):
        kind = k % 4
        if kind == 0:
            malformed.append(b"{not json")
        elif kind == 1:
            malformed.append(json.dumps({"event_id": f"bad-{k}", "event_type": "teleport"}).encode())
        elif kind == 2:
            bad = dict(rng.choice([e for e in events if e["event_type"] == "order_paid"]))
            bad = {**bad, "event_id": f"bad-{k}", "currency": "USD"}
            malformed.append(json.dumps(bad).encode())
        else:
            malformed.append(json.dumps({"event_id": f"bad-{k}", "event_type": "click",
                                         "occurred_at": "yesterday"}).encode())
    return World(events, malformed, prom_rows, products, rules)


def write_reference(world: World, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, cols, rows in (("promoters.csv", PROMOTER_COLUMNS, world.promoters),
                             ("products.csv", PRODUCT_COLUMNS, world.products),
                             ("commission_rules.csv", RULE_COLUMNS, world.rules)):
        with open(directory / name, "w", encoding="utf-8", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=cols)
            w.writeheader()
            w.writerows(rows)
