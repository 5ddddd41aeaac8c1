"""A small, independent pure-Python reading of rulebook §3 (click validity) and §4 (attribution),
written for the tests: loops and sorted lists, no windows, no joins. The Spark assets must agree
with it on every generated world (tests/integration/test_attribution.py).

Times are int64 microseconds since the epoch; event ids compare in byte order (Python str order
is code-point order, which is UTF-8 byte order)."""

from __future__ import annotations

from dataclasses import dataclass

US_PER_SECOND = 1_000_000
US_PER_DAY = 86_400 * US_PER_SECOND


@dataclass(frozen=True)
class Click:
    event_id: str
    ts: int
    promoter_id: str
    share_id: str
    buyer_id: str
    device_id: str
    user_agent: str | None


@dataclass(frozen=True)
class Order:
    event_id: str
    order_id: str
    ts: int
    buyer_id: str
    share_id: str | None


def _utf8(s: str) -> bytes:
    return s.encode("utf-8")


def validity(clicks: list[Click], patterns: list[str], flood_max: int = 20, window_s: int = 60):
    """event_id → (is_valid, reasons). Duplicate event_ids count once (the first one seen)."""
    unique: dict[str, Click] = {}
    for c in clicks:
        unique.setdefault(c.event_id, c)
    out = {}
    for c in unique.values():
        reasons = []
        ua = (c.user_agent or "").lower()
        if any(p.lower() in ua for p in patterns):
            reasons.append("ua_bot")
        near = sum(1 for o in unique.values()
                   if o.device_id == c.device_id and abs(o.ts - c.ts) <= window_s * US_PER_SECOND)
        if near > flood_max:
            reasons.append("flood")
        out[c.event_id] = (not reasons, reasons)
    return out


def _latest(cands: list[Click]) -> Click:
    """The latest click; at the same instant the smallest event_id (byte order)."""
    best_ts = max(c.ts for c in cands)
    return min((c for c in cands if c.ts == best_ts), key=lambda c: _utf8(c.event_id))


def last_click(orders: list[Order], clicks: list[Click], valid: dict, own_buyer: dict[str, str],
               lookback_days: int = 7, self_purchase: str = "allow"):
    """order event_id → (promoter_id, click_event_id, reason, candidates_considered)."""
    unique: dict[str, Click] = {}
    for c in clicks:
        unique.setdefault(c.event_id, c)
    good = [c for c in unique.values() if valid[c.event_id][0]]
    out = {}
    for o in orders:
        cands = [c for c in good if c.buyer_id == o.buyer_id and o.ts - lookback_days * US_PER_DAY < c.ts <= o.ts]
        shared = [c for c in cands if o.share_id is not None and c.share_id == o.share_id]
        if shared:
            chosen, reason = _latest(shared), "share_token"
        elif cands:
            chosen, reason = _latest(cands), "last_click"
        else:
            chosen, reason = None, "organic"
        if chosen and self_purchase == "deny" and own_buyer.get(chosen.promoter_id) == o.buyer_id:
            chosen, reason = None, "organic"
        out[o.event_id] = (chosen.promoter_id if chosen else None, chosen.event_id if chosen else None,
                           reason, len(cands))
    return out


def wechat_lock(orders: list[Order], clicks: list[Click], valid: dict, own_buyer: dict[str, str],
                lock_days: int = 5, extension_days: int = 20, lookback_days: int = 7,
                self_purchase: str = "allow"):
    """order event_id → (promoter_id, click_event_id, reason, candidates_considered).

    Read straight from the rulebook, whole history at once, one buyer at a time: a lock is a
    (promoter, click, until) triple, active while now < until."""
    unique: dict[str, Click] = {}
    for c in clicks:
        unique.setdefault(c.event_id, c)
    good = [c for c in unique.values() if valid[c.event_id][0]]
    out = {}
    for buyer in {o.buyer_id for o in orders}:
        timeline = [(c.ts, 0, _utf8(c.event_id), c) for c in good if c.buyer_id == buyer]
        timeline += [(o.ts, 1, _utf8(o.event_id), o) for o in orders if o.buyer_id == buyer]
        lock = None   # (promoter_id, click_event_id, until)
        for ts, _, _, ev in sorted(timeline, key=lambda x: x[:3]):
            if lock and ts >= lock[2]:
                lock = None
            if isinstance(ev, Click):
                if lock is None:
                    lock = (ev.promoter_id, ev.event_id, ts + lock_days * US_PER_DAY)
                elif lock[0] == ev.promoter_id:
                    lock = (lock[0], ev.event_id, max(lock[2], ts + lock_days * US_PER_DAY))
                continue
            cands = sum(1 for c in good if c.buyer_id == buyer and ts - lookback_days * US_PER_DAY < c.ts <= ts)
            if lock and not (self_purchase == "deny" and own_buyer.get(lock[0]) == buyer):
                out[ev.event_id] = (lock[0], lock[1], "lock", cands)
                lock = (lock[0], lock[1], max(lock[2], ts + extension_days * US_PER_DAY))
            else:
                out[ev.event_id] = (None, None, "organic", cands)
    return out
