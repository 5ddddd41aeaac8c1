"""The wechat_lock fold (pipelines/assets/attribution/lock.py) at its edges, with exact outputs;
the same cases through the independent reference (tests/attribution_reference.py)."""

from pipelines.assets.attribution import lock
from tests import attribution_reference as ref

DAY = 86_400_000_000
T0 = 1_791_000_000_000_000
ARGS = dict(lock_us=5 * DAY, order_ext_us=20 * DAY, lookback_us=7 * DAY)


def click(id_, ts, promoter):
    return {"rank": lock.CLICK, "ts": ts, "id": id_, "promoter_id": promoter, "buyer_id": "B"}


def order(id_, ts):
    return {"rank": lock.ORDER, "ts": ts, "id": id_, "promoter_id": None, "buyer_id": "B"}


def both(events, own=None, deny=False):
    """The fold's answer, checked against the reference's."""
    got, _ = lock.scan(events, [], own_buyer=own, deny_self=deny, **ARGS)
    clicks = [ref.Click(e["id"], e["ts"], e["promoter_id"], "S", "B", "D", None) for e in events if e["rank"] == lock.CLICK]
    orders = [ref.Order(e["id"], e["id"], e["ts"], "B", None) for e in events if e["rank"] == lock.ORDER]
    want = ref.wechat_lock(orders, clicks, {c.event_id: (True, []) for c in clicks}, own or {},
                           self_purchase="deny" if deny else "allow")
    assert {g[0]: (g[1], g[2], g[4], g[5]) for g in got} == want
    return {g[0]: (g[1], g[4]) for g in got}


def test_an_order_exactly_at_the_expiry_is_organic_one_microsecond_before_is_locked():
    assert both([click("c1", T0, "P1"), order("o1", T0 + 5 * DAY)]) == {"o1": (None, "organic")}
    assert both([click("c1", T0, "P1"), order("o1", T0 + 5 * DAY - 1)]) == {"o1": ("P1", "lock")}


def test_while_bound_other_promoters_attribute_nothing_and_after_expiry_they_bind():
    ev = [click("c1", T0, "P1"), click("c2", T0 + DAY, "P2"), order("o1", T0 + 2 * DAY),
          click("c3", T0 + 5 * DAY, "P2"), order("o2", T0 + 5 * DAY)]
    # o1 extends P1's lock to T0 + 22 days, so P2's click at T0 + 5 days still finds P1
    assert both(ev) == {"o1": ("P1", "lock"), "o2": ("P1", "lock")}
    ev = [click("c1", T0, "P1"), click("c3", T0 + 5 * DAY, "P2"), order("o2", T0 + 5 * DAY)]
    assert both(ev) == {"o2": ("P2", "lock")}


def test_a_bound_promoters_click_extends_and_never_shortens():
    ev = [click("c1", T0, "P1"), order("o1", T0 + DAY), click("c2", T0 + 2 * DAY, "P1"),
          order("o2", T0 + 20 * DAY)]                     # order ext. to T0+21d outlives the click's T0+7d
    assert both(ev) == {"o1": ("P1", "lock"), "o2": ("P1", "lock")}


def test_same_instant_clicks_the_smaller_event_id_binds_and_a_click_at_the_order_instant_counts():
    ev = [click("b", T0, "P2"), click("a", T0, "P1"), order("o1", T0)]
    assert both(ev) == {"o1": ("P1", "lock")}


def test_self_purchase_deny_is_organic_and_does_not_extend():
    own = {"P1": "B"}
    ev = [click("c1", T0, "P1"), order("o1", T0 + DAY), order("o2", T0 + 6 * DAY)]
    assert both(ev, own, deny=True) == {"o1": (None, "organic"), "o2": (None, "organic")}
    assert both(ev, own) == {"o1": ("P1", "lock"), "o2": ("P1", "lock")}


def test_end_of_day_snapshots_hold_active_locks_only():
    ends = [("d1", T0 + DAY), ("d2", T0 + 2 * DAY), ("d9", T0 + 9 * DAY)]
    _, states = lock.scan([click("c1", T0, "P1")], ends, **ARGS)
    assert states == [("d1", "P1", "c1", T0, T0, T0 + 5 * DAY), ("d2", "P1", "c1", T0, T0, T0 + 5 * DAY)]
