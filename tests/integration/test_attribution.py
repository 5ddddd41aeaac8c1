"""Spark attribution against an independent pure-Python reading of the rulebook
(tests/attribution_reference.py), on random small worlds drawn by hypothesis: equal timestamps,
mixed UTC/+08:00 offsets, floods straddling midnight, share tokens that match older clicks,
unknown share tokens, self-purchases, duplicate click events, clicks exactly 7 days before."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streaming.contracts import validate_event
from tests import attribution_reference as ref
from tests.corpus import encode

pytestmark = pytest.mark.integration

SHANGHAI = timezone(timedelta(hours=8))
BASE = datetime(2026, 10, 12, 0, 0, tzinfo=SHANGHAI)      # a Shanghai midnight
PROMOTER_BUYER = {"P0": "B0", "P1": "B7", "P2": "B8"}     # P0's own shopper id is a buyer below
UAS = [None, "Mozilla/5.0 MicroMessenger/8.0", "Mozilla/5.0 (compatible; Googlebot/2.1)", "curl/8.4", "Scrapy/2.11"]


def _text(dt: datetime, utc: bool) -> str:
    return (dt.astimezone(UTC).isoformat().replace("+00:00", "Z") if utc
            else dt.astimezone(SHANGHAI).isoformat())


# instants on a coarse grid (so that ties and exact 7-day boundaries happen) plus small jitter
instants = st.builds(
    lambda slot, jitter: BASE + timedelta(hours=6 * slot, seconds=jitter),
    st.integers(-32, 8), st.sampled_from([0, 0, 0, 1, 59, 60, 61]))


@st.composite
def worlds(draw):
    clicks, orders = [], []
    n = 0
    for _ in range(draw(st.integers(0, 14))):
        n += 1
        clicks.append({
            "event_id": draw(st.sampled_from([f"c{n:03d}", f"C{n}", f"c{n:03d}-é"])),
            "at": draw(instants), "utc": draw(st.booleans()),
            "promoter_id": draw(st.sampled_from(list(PROMOTER_BUYER))),
            "share_id": draw(st.sampled_from(["S0", "S1", "S2"])),
            "buyer_id": draw(st.sampled_from(["B0", "B1", "B2"])),
            "device_id": draw(st.sampled_from(["D0", "D1", "D2"])),
            "user_agent": draw(st.sampled_from(UAS)),
        })
    if clicks and draw(st.booleans()):   # a producer retry: the same click again
        clicks.append(dict(draw(st.sampled_from(clicks))))
    if draw(st.booleans()):              # a flood of one device around a Shanghai midnight
        start = BASE + timedelta(days=draw(st.integers(-3, 1)), seconds=draw(st.integers(-70, 10)))
        device = draw(st.sampled_from(["D0", "D1", "D2"]))
        for k in range(draw(st.integers(19, 24))):
            n += 1
            clicks.append({"event_id": f"f{n:03d}", "at": start + timedelta(seconds=draw(st.integers(0, 119)) if k else 0),
                           "utc": draw(st.booleans()), "promoter_id": "P1", "share_id": "S1",
                           "buyer_id": draw(st.sampled_from(["B0", "B1"])), "device_id": device,
                           "user_agent": None})
    for i in range(draw(st.integers(1, 6))):
        orders.append({"event_id": f"o{i}", "order_id": f"O{i}", "at": draw(instants), "utc": draw(st.booleans()),
                       "buyer_id": draw(st.sampled_from(["B0", "B1", "B2"])),
                       "share_id": draw(st.sampled_from([None, "S0", "S1", "S2", "S-unknown"]))})
    for o in orders:   # clicks exactly 7 days before an order (not a candidate) and at its instant (one)
        for delta in draw(st.sets(st.sampled_from([timedelta(days=7), timedelta(0), timedelta(days=7, microseconds=-1),
                                                   timedelta(days=5)]))):   # 5 days: a lock expiring at the order
            n += 1
            clicks.append({"event_id": f"e{n:03d}", "at": o["at"] - delta, "utc": draw(st.booleans()),
                           "promoter_id": draw(st.sampled_from(list(PROMOTER_BUYER))),
                           "share_id": draw(st.sampled_from(["S0", "S1"])), "buyer_id": o["buyer_id"],
                           "device_id": "D9", "user_agent": None})
    return clicks, orders


def _landed_clicks(clicks):
    rows = []
    for off, c in enumerate(clicks):
        ev = {"event_id": c["event_id"], "event_type": "click", "occurred_at": _text(c["at"], c["utc"]),
              "source": "bot", "schema_version": 1, "promoter_id": c["promoter_id"], "share_id": c["share_id"],
              "buyer_id": c["buyer_id"], "device_id": c["device_id"], "sku_id": "SKU1", "channel": "group"}
        if c["user_agent"] is not None:
            ev["user_agent"] = c["user_agent"]
        row = validate_event(encode(ev), "clicks")
        rows.append({**row, "_topic": "clicks", "_partition": 0, "_offset": off})
    return rows


def _landed_orders(orders):
    rows = []
    for o in orders:
        ev = {"event_id": o["event_id"], "event_type": "order_paid", "occurred_at": _text(o["at"], o["utc"]),
              "source": "storefront", "schema_version": 1, "order_id": o["order_id"], "buyer_id": o["buyer_id"],
              "share_id": o["share_id"], "currency": "CNY",
              "lines": [{"line_id": "L1", "sku_id": "SKU1", "quantity": 1, "unit_price_fen": 100,
                         "discount_fen": 0, "paid_fen": 100}]}
        rows.append(validate_event(encode(ev), "orders"))
    return rows


CLICK_SCHEMA = ("event_id string, occurred_at_us long, event_date string, source string, promoter_id string, "
                "share_id string, buyer_id string, device_id string, sku_id string, channel string, "
                "user_agent string, _topic string, _partition int, _offset long, _captured_at_us long")


def _frames(spark, cfg, click_rows, order_rows):
    """The flagged clicks (as run_attribution reads them), the valid ones and the orders."""
    from pipelines.assets.attribution.spark_jobs import CLICK_COLUMNS, click_validity

    clicks = spark.createDataFrame([tuple(r.get(c) for c in CLICK_COLUMNS) for r in click_rows], CLICK_SCHEMA)
    flagged = click_validity(spark, cfg, clicks)   # landed copies: a retry is dropped in the same pass
    flagged = flagged.select("event_id", "occurred_at_us", "buyer_id", "share_id", "promoter_id", "is_valid",
                             "invalid_reasons")
    valid = flagged.where("is_valid").drop("is_valid", "invalid_reasons")
    orders = spark.createDataFrame(
        [(o["event_id"], o["order_id"], o["buyer_id"], o["share_id"], o["occurred_at_us"], o["event_date"])
         for o in order_rows],
        "order_event_id string, order_id string, buyer_id string, share_id string, paid_at_us long, event_date string")
    return flagged, valid, orders


def spark_attribution(spark, cfg, click_rows, order_rows):
    from pipelines.assets.attribution.spark_jobs import last_click

    flagged, valid, orders = _frames(spark, cfg, click_rows, order_rows)
    validity = {r["event_id"]: (r["is_valid"], [x for x in r["invalid_reasons"].split(",") if x])
                for r in flagged.collect()}
    self_buyers = spark.createDataFrame(list(PROMOTER_BUYER.items()), "promoter_id string, promoter_buyer_id string")
    out = last_click(spark, cfg, orders, flagged, self_buyers)[0].collect()
    return validity, {r["order_event_id"]: (r["promoter_id"], r["click_event_id"], r["attribution_reason"],
                                            r["candidates_considered"]) for r in out}


def _reference_inputs(cfg, click_rows, order_rows):
    """The reference's clicks, orders and click validity for landed rows."""
    clicks = [ref.Click(r["event_id"], r["occurred_at_us"], r["promoter_id"], r["share_id"], r["buyer_id"],
                        r["device_id"], r.get("user_agent")) for r in click_rows]
    orders = [ref.Order(o["event_id"], o["order_id"], o["occurred_at_us"], o["buyer_id"], o["share_id"])
              for o in order_rows]
    cv = cfg.click_validity
    return clicks, orders, ref.validity(clicks, cv.bot_user_agent_patterns, cv.flood_max_clicks, cv.flood_window_seconds)


def reference(cfg, click_rows, order_rows, self_purchase="allow"):
    clicks, orders, valid = _reference_inputs(cfg, click_rows, order_rows)
    return valid, ref.last_click(orders, clicks, valid, PROMOTER_BUYER, cfg.attribution.lookback_days, self_purchase)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
@given(world=worlds())
def test_spark_last_click_equals_the_reference_on_random_worlds(spark_cfg, world):
    cfg, spark = spark_cfg
    deny = _deny_config(cfg)
    click_rows, order_rows = _landed_clicks(world[0]), _landed_orders(world[1])
    got_valid, got = spark_attribution(spark, cfg, click_rows, order_rows)
    want_valid, want = reference(cfg, click_rows, order_rows)
    assert got_valid == want_valid
    assert got == want
    _, got_deny = spark_attribution(spark, deny, click_rows, order_rows)
    assert got_deny == reference(deny, click_rows, order_rows, self_purchase="deny")[1]


def _deny_config(cfg, model="last_click"):
    from o2p.config import load_config

    path = cfg.home_path / f"deny-{model}.yaml"
    if not path.exists():
        path.write_text(open(cfg.source).read() + f"attribution:\n  self_purchase: deny\n  model: {model}\n")
    return load_config(path, home=cfg.home_path)


def _lock_config(cfg):
    from o2p.config import load_config

    path = cfg.home_path / "lock.yaml"
    if not path.exists():
        path.write_text(open(cfg.source).read() + "attribution:\n  model: wechat_lock\n")
    return load_config(path, home=cfg.home_path)


def spark_lock(spark, cfg, click_rows, order_rows):
    from pipelines.assets.attribution.spark_jobs import wechat_lock
    from pipelines.lib.partitions import window_dates

    _, valid, orders = _frames(spark, cfg, click_rows, order_rows)
    empty_state = spark.createDataFrame([], "buyer_id string, promoter_id string, click_event_id string, "
                                            "click_occurred_at_us long, bound_at_us long, expires_at_us long")
    days = sorted({r["event_date"] for r in click_rows + order_rows})
    out, _, _ = wechat_lock(spark, cfg, orders, valid, valid.limit(0), empty_state, PROMOTER_BUYER,
                            window_dates(days[0], days[-1]))
    return {r["order_event_id"]: (r["promoter_id"], r["click_event_id"], r["attribution_reason"],
                                  r["candidates_considered"]) for r in out.collect()}


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
@given(world=worlds())
def test_spark_wechat_lock_equals_the_reference_on_random_worlds(spark_cfg, world):
    base, spark = spark_cfg
    click_rows, order_rows = _landed_clicks(world[0]), _landed_orders(world[1])
    for cfg, mode in ((_lock_config(base), "allow"), (_deny_config(base, "wechat_lock"), "deny")):
        clicks, orders, valid = _reference_inputs(cfg, click_rows, order_rows)
        want = ref.wechat_lock(orders, clicks, valid, PROMOTER_BUYER, self_purchase=mode)
        assert spark_lock(spark, cfg, click_rows, order_rows) == want, mode


# ---- the decision trace (issue #14): exact rows on a hand-made world ------------------------------
H, D = timedelta(hours=1), timedelta(days=1)
T = BASE + 12 * H                          # 2026-10-12 12:00 +08:00
BOT_UA = "Mozilla/5.0 (compatible; Googlebot/2.1)"


def _click(event_id, at, promoter, buyer, share="S9", device="D0", ua=None):
    return {"event_id": event_id, "at": at, "utc": False, "promoter_id": promoter, "share_id": share,
            "buyer_id": buyer, "device_id": device, "user_agent": ua}


def _order(event_id, at, buyer, share=None):
    return {"event_id": event_id, "order_id": event_id.upper(), "at": at, "utc": True, "buyer_id": buyer,
            "share_id": share}


TRACE_CLICKS = [
    # o1, share token S1: the latest click carrying it wins though a later one lacks it
    _click("c101", T - 3 * D, "P1", "B1", share="S1"), _click("c103", T - 2 * D, "P1", "B1", share="S1"),
    _click("c102", T - 1 * D, "P2", "B1", share="S2"),
    # o2: two promoters, a tie at one microsecond (smallest event_id wins), a bot click, one too old
    _click("c205", T - 8 * D, "P2", "B2"), _click("c201", T - 2 * H, "P1", "B2"),
    _click("c202", T - 1 * H, "P2", "B2"), _click("c203", T - 1 * H, "P1", "B2"),
    _click("c204", T - H / 2, "P1", "B2", ua=BOT_UA),
    # o3: one click of B3 is part of a flood (21 clicks of device D5 within 10 s)
    _click("c302", T + D - 2 * H, "P2", "B3"), _click("c301", T + D - H, "P1", "B3", device="D5"),
    *[_click(f"f{k:02d}", T + D - H + timedelta(seconds=k // 2), "P1", "B9", device="D5") for k in range(20)],
    # o4: B0 is P0's own shopper id (a self-purchase)
    _click("c402", T - 3 * H, "P1", "B0"), _click("c401", T - 1 * H, "P0", "B0"),
    # o6, o7: P2's lock, extended by o6, outlives the window at o7
    _click("c601", T - 10 * D, "P2", "B5"),
    # o8: P1's lock expired a day before the order
    _click("c801", T - 6 * D, "P1", "B6"),
]
TRACE_ORDERS = [_order("o1", T, "B1", "S1"), _order("o2", T, "B2"), _order("o3", T + D, "B3"),
                _order("o4", T, "B0"), _order("o5", T, "B4", "S-unknown"), _order("o6", T - 6 * D, "B5"),
                _order("o7", T, "B5"), _order("o8", T, "B6")]

# (order, candidate_rank, click, click's promoter, is_valid, invalid_reasons, outcome, reason), last_click
LAST_CLICK_TRACE = {
    ("o1", 1, "c102", "P2", True, "", "lost", "share_token_precedence"),
    ("o1", 2, "c103", "P1", True, "", "won", "share_token"),
    ("o1", 3, "c101", "P1", True, "", "lost", "later_click_won"),
    ("o2", 1, "c204", "P1", False, "ua_bot", "lost", "invalid_click"),
    ("o2", 2, "c202", "P2", True, "", "won", "last_click"),
    ("o2", 3, "c203", "P1", True, "", "lost", "tie_broken_by_event_id"),
    ("o2", 4, "c201", "P1", True, "", "lost", "later_click_won"),
    ("o3", 1, "c301", "P1", False, "flood", "lost", "invalid_click"),
    ("o3", 2, "c302", "P2", True, "", "won", "last_click"),
    ("o4", 1, "c401", "P0", True, "", "won", "last_click"),          # self_purchase: allow
    ("o4", 2, "c402", "P1", True, "", "lost", "later_click_won"),
    ("o5", None, None, None, None, None, "none", "no_click_in_window"),
    ("o6", 1, "c601", "P2", True, "", "won", "last_click"),
    ("o7", None, None, None, None, None, "none", "no_click_in_window"),
    ("o8", 1, "c801", "P1", True, "", "won", "last_click"),
}
DENY_CHANGES = {   # self_purchase: deny: the rules still choose c401, and the order is organic
    ("o4", 1, "c401", "P0", True, "", "won", "last_click"): ("o4", 1, "c401", "P0", True, "", "lost", "self_purchase"),
}
LOCK_TRACE = {
    ("o1", 1, "c102", "P2", True, "", "lost", "locked_to_other_promoter"),
    ("o1", 2, "c103", "P1", True, "", "won", "lock"),                 # P1's latest click extended the lock
    ("o1", 3, "c101", "P1", True, "", "lost", "later_click_won"),
    ("o2", 1, "c204", "P1", False, "ua_bot", "lost", "invalid_click"),
    ("o2", 2, "c202", "P2", True, "", "lost", "locked_to_other_promoter"),
    ("o2", 3, "c203", "P1", True, "", "won", "lock"),
    ("o2", 4, "c201", "P1", True, "", "lost", "later_click_won"),
    ("o3", 1, "c301", "P1", False, "flood", "lost", "invalid_click"),
    ("o3", 2, "c302", "P2", True, "", "won", "lock"),
    ("o4", 1, "c401", "P0", True, "", "lost", "locked_to_other_promoter"),
    ("o4", 2, "c402", "P1", True, "", "won", "lock"),
    ("o5", None, None, None, None, None, "none", "no_click_in_window"),
    ("o6", 1, "c601", "P2", True, "", "won", "lock"),
    ("o7", None, "c601", "P2", True, "", "won", "lock"),              # the lock's click, older than the window
    ("o8", 1, "c801", "P1", True, "", "lost", "no_active_lock"),
}


def _trace_rows(frame) -> set:
    return {(r["order_event_id"], r["candidate_rank"], r["click_event_id"], r["promoter_id"], r["is_valid"],
             r["invalid_reasons"], r["outcome"], r["reason"]) for r in frame.collect()}


def test_the_decision_trace_names_each_candidate_and_why_it_lost(spark_cfg):
    """Exact trace rows of a hand-made world under last_click (allow, deny) and wechat_lock; the
    trace's winner of each order is the attribution's click."""
    from pipelines.assets.attribution.spark_jobs import last_click, wechat_lock
    from pipelines.lib.partitions import window_dates

    base, spark = spark_cfg
    click_rows, order_rows = _landed_clicks(TRACE_CLICKS), _landed_orders(TRACE_ORDERS)
    self_buyers = spark.createDataFrame(list(PROMOTER_BUYER.items()), "promoter_id string, promoter_buyer_id string")
    got = {}
    for name, cfg in (("allow", base), ("deny", _deny_config(base))):
        flagged, _, orders = _frames(spark, cfg, click_rows, order_rows)
        out, trace = last_click(spark, cfg, orders, flagged, self_buyers, trace=True)
        got[name] = (_trace_rows(trace), {r["order_event_id"]: r["click_event_id"] for r in out.collect()})
    lock = _lock_config(base)
    flagged, valid, orders = _frames(spark, lock, click_rows, order_rows)
    empty_state = spark.createDataFrame([], "buyer_id string, promoter_id string, click_event_id string, "
                                            "click_occurred_at_us long, bound_at_us long, expires_at_us long")
    days = sorted({r["event_date"] for r in click_rows + order_rows})
    out, _, trace = wechat_lock(spark, lock, orders, valid, valid.limit(0), empty_state, PROMOTER_BUYER,
                                window_dates(days[0], days[-1]), trace_clicks=flagged)
    got["lock"] = (_trace_rows(trace), {r["order_event_id"]: r["click_event_id"] for r in out.collect()})

    deny = {DENY_CHANGES.get(r, r) for r in LAST_CLICK_TRACE}
    for name, want in (("allow", LAST_CLICK_TRACE), ("deny", deny), ("lock", LOCK_TRACE)):
        rows, attributed = got[name]
        assert rows == want, (name, sorted(rows ^ want, key=str))
        assert {r[0]: r[2] for r in rows if r[6] == "won"} == {k: v for k, v in attributed.items() if v}, name


def test_a_crowded_window_lists_its_latest_clicks_and_the_winner_beyond_them(spark_cfg):
    """A buyer with 25 valid clicks in the window, the oldest carrying the order's share token: the
    trace lists the latest TRACE_MAX_CANDIDATES (20) and the share-token click that won from rank
    25, no other; clicks_in_window counts all 25."""
    from pipelines.assets.attribution.spark_jobs import TRACE_MAX_CANDIDATES, last_click

    base, spark = spark_cfg
    assert TRACE_MAX_CANDIDATES == 20
    minute = timedelta(minutes=1)
    clicks = [_click("c900", T - 5 * H, "P3", "B9", share="S90", device="D900")] + [
        _click(f"c9{k:02d}", T - 4 * H + 10 * k * minute, "P1", "B9", share="S91", device=f"D9{k:02d}")
        for k in range(1, 25)]   # 10 minutes apart, one device each: none is a flood
    flagged, _, orders = _frames(spark, base, _landed_clicks(clicks), _landed_orders([_order("o9", T, "B9", "S90")]))
    self_buyers = spark.createDataFrame([], "promoter_id string, promoter_buyer_id string")
    out, trace = last_click(spark, base, orders, flagged, self_buyers, trace=True)
    rows = {(r["candidate_rank"], r["click_event_id"], r["outcome"], r["reason"], r["clicks_in_window"])
            for r in trace.collect()}
    want = {(25, "c900", "won", "share_token", 25)} | {
        (25 - k, f"c9{k:02d}", "lost", "share_token_precedence", 25) for k in range(5, 25)}   # ranks 1..20
    assert rows == want, sorted(rows ^ want)
    assert [r["click_event_id"] for r in out.collect()] == ["c900"]


def _home(base_cfg, path, model="last_click"):
    from o2p.config import load_config

    path.mkdir(parents=True)
    (path / "o2p.yaml").write_text(open(base_cfg.source).read() + f"attribution:\n  model: {model}\n")
    return load_config(path / "o2p.yaml", home=path)


def _land(cfg, events, first_offset=0):
    """Land events through the real capture sink (one batch per topic partition 0)."""
    from streaming.capture.sink import Rec, Sink
    from streaming.producer import encode as enc
    from streaming.producer import route

    sink = Sink(cfg)
    by_topic: dict = {}
    for e in events:
        by_topic.setdefault(route(cfg, e)[0], []).append(e)
    for topic, evs in by_topic.items():
        sink.acquire(topic, 0)
        start = sink.recover(topic, 0) or first_offset
        sink.land(topic, 0, [Rec(start + i, None, enc(e), 0) for i, e in enumerate(evs)])
    sink.close()


def _table(spark, root, drop=()):
    rows = spark.read.parquet(str(root)).drop(*drop).collect()
    return sorted((tuple(sorted(r.asDict().items())) for r in rows), key=repr)   # rows with nulls too


@pytest.mark.parametrize("model", ["last_click", "wechat_lock"])
def test_day_by_day_with_late_clicks_and_reruns_equals_all_at_once(spark_cfg, tmp_path, model):
    import random

    from o2p.layout import landed_dates
    from o2p.reference import load_reference
    from pipelines.assets.attribution.spark_jobs import run_attribution, run_click_validity
    from pipelines.lib.partitions import affected_range, window_dates
    from streaming.simulate import build_world, write_reference

    base, spark = spark_cfg
    world = build_world("2026-10", orders=400, buyers=25, promoters=8, flood_devices=6,
                        malformed_share=0, seed=3)
    events = [e for e in world.events
              if e["event_type"] in ("click", "order_paid") and _shanghai_day(e) <= "2026-10-12"]
    rng = random.Random(4)
    # late: some clicks at random, and clicks that would win an order two or more days later
    late_ids = {id(e) for e in events if e["event_type"] == "click" and rng.random() < 0.1}
    for o in (e for e in events if e["event_type"] == "order_paid"):
        before = [c for c in events if c["event_type"] == "click" and c["buyer_id"] == o["buyer_id"]
                  and c["occurred_at"] < o["occurred_at"] and _shanghai_day(c) < _day_minus(o, 1)]
        if before and rng.random() < 0.5:
            late_ids.add(id(max(before, key=lambda c: c["occurred_at"])))
    # (all of them from the first days, so that the stale range reaches well past their own days)
    late = [e for e in events if id(e) in late_ids and _shanghai_day(e) <= "2026-10-04"]
    late_ids = {id(e) for e in late}
    on_time = [e for e in events if id(e) not in late_ids]

    everything = _home(base, tmp_path / "all", model)
    daily = _home(base, tmp_path / "daily", model)
    for cfg in (everything, daily):
        write_reference(world, cfg.reference_path)
    promoters = load_reference(everything.reference_path, encoding=everything.reference_encoding).promoters

    _land(everything, on_time + late)
    days = sorted(set(landed_dates(everything.landing_path, "clicks")) | set(landed_dates(everything.landing_path, "orders")))
    run_click_validity(spark, everything, days[0], days[-1])
    run_attribution(spark, everything, days[0], days[-1], promoters)

    _land(daily, on_time)
    for d in window_dates(days[0], days[-1]):
        run_click_validity(spark, daily, d, d)
        run_attribution(spark, daily, d, d, promoters)
    _land(daily, late)                                  # late clicks arrive for old days
    start, end = affected_range({_shanghai_day(e) for e in late}, set(),
                                daily.attribution.lookback_days, model, last_key=days[-1])
    run_click_validity(spark, daily, start, end)        # the range the landing sensor requests
    run_attribution(spark, daily, start, end, promoters)
    run_attribution(spark, daily, days[3], days[3], promoters)   # a re-run changes nothing

    tables = ("clicks_validated", "attribution", "attribution_decisions") + (
        ("lock_state",) if model == "wechat_lock" else ())
    for table in tables:
        want = _table(spark, everything.warehouse_path / table)
        assert want and _table(spark, daily.warehouse_path / table) == want, table
    _assert_the_trace_agrees_with_the_attribution(everything)
    reasons = {r[0] for r in spark.read.parquet(str(everything.warehouse_path / "attribution"))
               .select("attribution_reason").distinct().collect()}
    assert reasons == ({"lock", "organic"} if model == "wechat_lock" else {"share_token", "last_click", "organic"})
    flooded = spark.read.parquet(str(everything.warehouse_path / "clicks_validated")).where("not is_valid").count()
    assert flooded >= 6 * 21   # the floods (some across midnight) were found in both

    # attribution.decision_trace false: a day attributed again loses its trace (it would no longer
    # be this attribution's), and its attribution is the same
    from o2p.config import load_config
    from o2p.layout import event_date_dir

    off_yaml = tmp_path / "all" / "o2p-no-trace.yaml"
    off_yaml.write_text((tmp_path / "all" / "o2p.yaml").read_text() + "  decision_trace: false\n")
    off = load_config(off_yaml, home=tmp_path / "all")
    assert off.attribution.decision_trace is False and everything.attribution.decision_trace is True
    trace_root = everything.warehouse_path / "attribution_decisions"
    traced = [d for d in days if event_date_dir(trace_root, d).is_dir()]
    before = _table(spark, everything.warehouse_path / "attribution", drop=("config_hash",))
    run_attribution(spark, off, traced[-1], traced[-1], promoters)
    assert not event_date_dir(trace_root, traced[-1]).exists()
    assert all(event_date_dir(trace_root, d).is_dir() for d in traced[:-1])
    assert _table(spark, everything.warehouse_path / "attribution", drop=("config_hash",)) == before   # another config


def _assert_the_trace_agrees_with_the_attribution(cfg):
    """Every order of the attribution output has trace rows; its one `won` row is the attributed
    click (none for an organic order); every click the trace names is a click of the buyer."""
    import duckdb

    w = cfg.warehouse_path
    con = duckdb.connect()
    con.execute(f"create view a as select * from read_parquet('{w}/attribution/*/*.parquet')")
    con.execute(f"create view t as select * from read_parquet('{w}/attribution_decisions/*/*.parquet')")
    con.execute(f"create view c as select * from read_parquet('{w}/clicks_validated/*/*.parquet')")
    n_orders, n_won = con.execute("select count(*), count(click_event_id) from a").fetchone()
    assert n_orders > 50 and n_won > 20
    assert con.execute("""
        select count(*) from a full join (select order_event_id, count(*) filter (where outcome = 'won') as won,
                                                 any_value(click_event_id) filter (where outcome = 'won') as click
                                          from t group by all) w using (order_event_id)
        where w.order_event_id is null or a.order_event_id is null or w.won > 1
           or a.click_event_id is distinct from w.click""").fetchone()[0] == 0
    assert con.execute("""select count(*) from t left join c on t.click_event_id = c.event_id
                          where t.click_event_id is not null
                            and (c.event_id is null or c.buyer_id <> t.buyer_id or c.is_valid <> t.is_valid)"""
                       ).fetchone()[0] == 0
    reasons = {r[0] for r in con.execute("select distinct reason from t").fetchall()}
    assert {"invalid_click", "later_click_won"} <= reasons, reasons


def _shanghai_day(event) -> str:
    from o2p.timeutil import parse_rfc3339

    return parse_rfc3339(event["occurred_at"]).astimezone(SHANGHAI).date().isoformat()


def _day_minus(event, n: int) -> str:
    from datetime import date

    return (date.fromisoformat(_shanghai_day(event)) - timedelta(days=n)).isoformat()


def test_attribution_on_a_standalone_spark_cluster_equals_local_mode_with_a_worker_killed_mid_job(
        spark_cfg, tmp_path):
    """Click validity and attribution on `spark://`: a standalone cluster (tests/spark_cluster.py)
    of two workers of one core each. Once the job has finished a few stages and has tasks
    running, one worker is killed with -9 (its executor with it); Spark re-runs the lost tasks
    and the lost shuffle output on the other worker, and the output equals local mode's."""
    import json
    import subprocess
    import sys
    import time

    from o2p.reference import load_reference
    from pipelines.assets.attribution.spark_jobs import run_attribution, run_click_validity
    from streaming.simulate import build_world, write_reference
    from tests.conftest import REPO
    from tests.spark_cluster import _free_port, get_json, standalone_cluster

    base, spark = spark_cfg
    world = build_world("2026-10", orders=200, buyers=20, promoters=6, flood_devices=2, malformed_share=0, seed=8)
    events = [e for e in world.events
              if e["event_type"] in ("click", "order_paid") and _shanghai_day(e) <= "2026-10-10"]
    local, remote = _home(base, tmp_path / "local"), _home(base, tmp_path / "cluster")
    for cfg in (local, remote):
        write_reference(world, cfg.reference_path)
        _land(cfg, events)
    run_click_validity(spark, local, "2026-10-01", "2026-10-10")
    run_attribution(spark, local, "2026-10-01", "2026-10-10", load_reference(local.reference_path, encoding=local.reference_encoding).promoters)

    app_ui = _free_port()   # the driver's UI, for its REST API (/api/v1/applications/.../stages)
    with standalone_cluster(tmp_path / "spark", cores=1, memory="1g", workers=2) as cluster:
        cfg_file = remote.home_path / "o2p.yaml"
        spark_yaml = 'spark:\n  conf:\n    spark.sql.shuffle.partitions: "2"\n'
        assert spark_yaml in cfg_file.read_text()
        cfg_file.write_text(cfg_file.read_text().replace(spark_yaml, (
            f'spark:\n  master: "{cluster.master}"\n  conf:\n    spark.sql.shuffle.partitions: "2"\n'
            f'    spark.ui.enabled: "true"\n    spark.ui.port: "{app_ui}"\n')))
        driver = subprocess.Popen([sys.executable, "-m", "tests.spark_cluster", str(cfg_file), str(remote.home_path),
                                   "2026-10-01", "2026-10-10"], cwd=REPO, stdout=subprocess.PIPE,
                                  stderr=open(tmp_path / "driver.log", "w"), text=True)
        try:
            api = f"http://127.0.0.1:{app_ui}/api/v1/applications"
            deadline = time.monotonic() + 180
            stages: list = []
            while True:   # a few stages done (shuffle output on both workers) and tasks running now
                assert driver.poll() is None and time.monotonic() < deadline, (tmp_path / "driver.log").read_text()[-3000:]
                apps = get_json(api) or []
                stages = get_json(f"{api}/{apps[0]['id']}/stages") or [] if apps else []
                done = [s for s in stages if s["status"] == "COMPLETE"]
                running = [s for s in stages if s["status"] == "ACTIVE" and s["numActiveTasks"] > 0]
                if len(done) >= 4 and running:
                    break
                time.sleep(0.1)
            cluster.kill_worker(0)
            out, _ = driver.communicate(timeout=300)
        finally:
            if driver.poll() is None:
                driver.kill()
        log = (tmp_path / "driver.log").read_text()
        assert driver.returncode == 0, log[-3000:]
        assert cluster.status()["aliveworkers"] == 1
    print(f"\nkilled worker 1 after {len(done)} stages, while {[s['name'][:40] for s in running]} ran")
    assert "Lost executor" in log or "lost worker" in log.lower(), log[-3000:]
    ran = json.loads(out.strip().splitlines()[-1])
    assert ran["master"] == cluster.master and ran["executors"] >= 1
    assert ran["attribution"]["orders"] > 40 and ran["attribution"]["attributed"] > 20
    for table in ("clicks_validated", "attribution"):
        # config_hash differs by spark.master only; every other column must be equal
        assert (_table(spark, remote.warehouse_path / table, ["config_hash"])
                == _table(spark, local.warehouse_path / table, ["config_hash"])), table
