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
        for delta in draw(st.sets(st.sampled_from([timedelta(days=7), timedelta(0), timedelta(days=7, microseconds=-1)]))):
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
                "user_agent string, _topic string, _partition int, _offset long")


def spark_attribution(spark, cfg, click_rows, order_rows):
    from pipelines.assets.attribution.spark_jobs import CLICK_COLUMNS, click_validity, dedupe, last_click

    clicks = spark.createDataFrame([tuple(r.get(c) for c in CLICK_COLUMNS) for r in click_rows], CLICK_SCHEMA)
    flagged = click_validity(spark, cfg, dedupe(clicks)).collect()
    validity = {r["event_id"]: (r["is_valid"], [x for x in r["invalid_reasons"].split(",") if x]) for r in flagged}
    valid = click_validity(spark, cfg, dedupe(clicks)).where("is_valid").select(
        "event_id", "occurred_at_us", "buyer_id", "share_id", "promoter_id")
    orders = spark.createDataFrame(
        [(o["event_id"], o["order_id"], o["buyer_id"], o["share_id"], o["occurred_at_us"], o["event_date"])
         for o in order_rows],
        "order_event_id string, order_id string, buyer_id string, share_id string, paid_at_us long, event_date string")
    self_buyers = spark.createDataFrame(list(PROMOTER_BUYER.items()), "promoter_id string, promoter_buyer_id string")
    out = last_click(spark, cfg, orders, valid, self_buyers).collect()
    return validity, {r["order_event_id"]: (r["promoter_id"], r["click_event_id"], r["attribution_reason"],
                                            r["candidates_considered"]) for r in out}


def reference(cfg, click_rows, order_rows, self_purchase="allow"):
    clicks = [ref.Click(r["event_id"], r["occurred_at_us"], r["promoter_id"], r["share_id"], r["buyer_id"],
                        r["device_id"], r.get("user_agent")) for r in click_rows]
    orders = [ref.Order(o["event_id"], o["order_id"], o["occurred_at_us"], o["buyer_id"], o["share_id"])
              for o in order_rows]
    cv = cfg.click_validity
    valid = ref.validity(clicks, cv.bot_user_agent_patterns, cv.flood_max_clicks, cv.flood_window_seconds)
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


def _deny_config(cfg):
    from o2p.config import load_config

    path = cfg.home_path / "deny.yaml"
    if not path.exists():
        path.write_text(open(cfg.source).read() + "attribution:\n  self_purchase: deny\n")
    return load_config(path, home=cfg.home_path)
