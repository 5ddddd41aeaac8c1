"""`wechat_lock` attribution (rulebook §4): WeChat Shop's promoter locking, per buyer.

A valid click of promoter p binds its buyer to p for `lock_days` unless the buyer is already
bound to someone else; a valid click of the bound promoter extends the lock to `lock_days` after
that click; an order attributed under the lock extends it to `lock_order_extension_days` after
the order; while bound, other promoters' clicks attribute nothing; an order with no active lock
is `organic`.

Choices where the rulebook is silent (also in the README):
- a lock is active on [bound_at, expires_at): an order (or another promoter's click) exactly at
  expires_at finds it expired;
- at one instant clicks come before orders (as in last_click), and clicks in event_id byte order:
  of two promoters' clicks at the same instant with no lock, the smaller event_id binds;
- an extension never shortens a lock (max of the current and the new expiry);
- `click_event_id` of a locked order is the bound promoter's latest click that bound or extended
  the lock; `candidates_considered` counts the buyer's valid clicks in (t − lookback, t], as in
  last_click;
- with `self_purchase: deny` a self-purchase is organic and does not extend the lock.

Partitions without reading all history: the state machine is a fold over time, so its state at
the end of a day is all that later days need. A run over days first..last starts from the
snapshot of active locks at the end of first − 1 (`warehouse/lock_state/event_date=…`), replays
the valid clicks and orders of first..last, and writes the attribution of their orders and a
snapshot for each of its days. A lock is active at most `lock_order_extension_days` after the
buyer's last event, so a snapshot holds only recently active buyers, never all history.
"""

from __future__ import annotations

from collections import deque

# an event's `rank` orders the events of one instant: the carried-in state, then clicks, then orders
STATE, CLICK, ORDER, PAST_CLICK = 0, 1, 2, -1


def scan(events, day_ends: list[tuple[str, int]], lock_us: int, order_ext_us: int, lookback_us: int,
         own_buyer: dict[str, str] | None = None, deny_self: bool = False):
    """Fold one buyer's events.

    events: dicts with rank (STATE | CLICK | ORDER | PAST_CLICK), ts, id (click or order event id),
        promoter_id; ORDER also order_id, share_id; STATE also expires_at, bound_at, click_id.
        STATE also click_ts. PAST_CLICK are valid clicks before the run (only counted as candidates).
    day_ends: (date, first instant of the next day) for each day of the run, in order.
    Returns (orders, states): one tuple per ORDER (id, promoter_id, click_id, click_ts, reason,
    candidates, lock) — `lock` the active lock at the order, (promoter_id, click_id, click_ts),
    even when self_purchase: deny made the order organic, else None (read by the decision
    trace) — and one per day end with an active lock (date, promoter_id, click_id, click_ts,
    bound_at, expires_at).
    """
    evs = sorted(events, key=lambda e: (e["ts"], e["rank"], e["id"].encode("utf-8")))
    bound = click_id = click_ts = None
    bound_at = expires = 0
    recent: deque[int] = deque()       # timestamps of valid clicks, for candidates_considered
    orders, states = [], []
    day = 0

    def close_days_before(ts: int) -> None:
        nonlocal day
        while day < len(day_ends) and day_ends[day][1] <= ts:
            if bound is not None and expires > day_ends[day][1]:
                states.append((day_ends[day][0], bound, click_id, click_ts, bound_at, expires))
            day += 1

    for e in evs:
        rank, ts = e["rank"], e["ts"]
        if rank == STATE:
            bound, click_id, click_ts = e["promoter_id"], e["id"], e["click_ts"]
            bound_at, expires = e["bound_at"], e["expires_at"]
            continue
        if rank == PAST_CLICK:
            recent.append(ts)
            continue
        close_days_before(ts)
        active = bound is not None and ts < expires
        if rank == CLICK:
            recent.append(ts)
            if not active:
                bound, click_id, click_ts, bound_at, expires = e["promoter_id"], e["id"], ts, ts, ts + lock_us
            elif e["promoter_id"] == bound:
                click_id, click_ts, expires = e["id"], ts, max(expires, ts + lock_us)
            continue
        # an order
        while recent and recent[0] <= ts - lookback_us:
            recent.popleft()
        candidates = sum(1 for t in recent if t <= ts)
        self_purchase = deny_self and own_buyer is not None and own_buyer.get(bound) == e.get("buyer_id")
        held = (bound, click_id, click_ts) if active else None
        if active and not self_purchase:
            orders.append((e["id"], bound, click_id, click_ts, "lock", candidates, held))
            expires = max(expires, ts + order_ext_us)
        else:
            orders.append((e["id"], None, None, None, "organic", candidates, held))
    close_days_before(2**62)
    return orders, states
