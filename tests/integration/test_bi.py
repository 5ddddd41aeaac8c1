"""BI (issue #14): what analysts read, on the golden world (tests/integration/test_golden.py)
released for August and September 2026 through the real pipeline, last click, cumulative tax.

- a copy of `$O2P_HOME` moved to another folder answers every table and view the same;
- commission movements sum where entitlements double-count; the calendar is Shanghai's;
- the BI copy, held open through duckdb_engine (Superset's driver) while September's run and
  release complete: neither is delayed or failed, the open connection reads August's state
  until it reconnects, then September's;
- the PostgreSQL copy (`bi.postgres_url`, the real server of the `postgres` fixture), read in a
  REPEATABLE READ transaction held open across September's run: the reader sees August's
  tables whole, then, after it, the same rows as the DuckDB copy;
- the marts for people (orders, daily per promoter, the funnel, estimated vs settled) against
  hand counts; a few clicks beyond the golden world's (a flood, bot clicks) are landed in August
  for the click columns; they win no order, so every amount of the golden world stands.
"""

import shutil
from datetime import UTC
from pathlib import Path

import duckdb
import pytest

from o2p import layout
from o2p.config import load_config
from o2p.timeutil import period_end_us
from tests.integration.test_golden import (
    AUGUST,
    PROMOTERS,
    SEPTEMBER,
    _ev,
    fen,
    land,
    pipeline,
    read_csv,
    read_people_csv,
    write_reference,
)

pytestmark = pytest.mark.integration


def marts_periods(conn) -> list[str]:
    from sqlalchemy import text

    return [r[0] for r in conn.execute(text("select distinct period from marts.fct_commission_entitlements order by 1"))]


def _click(eid, at, promoter, buyer, *, channel, source="storefront", user_agent=None):
    return _ev(eid, "click", at, promoter_id=promoter, share_id=f"S-{eid}", buyer_id=buyer, device_id=f"D-{buyer}",
               sku_id="SKU1", channel=channel, user_agent=user_agent, source=source)


# 2026-08-20: 21 clicks of one device within 20 s (each has 21 within 60 s: all flood, rulebook
# §3), two bot-pushed clicks with a crawler's user agent (ua_bot) and a valid one; no order follows.
EXTRA_CLICKS = [
    *(_click(f"c-flood-{i:02d}", f"2026-08-20T12:00:{i:02d}+08:00", "PA", "UF", channel="moments") for i in range(21)),
    _click("c-bot-1", "2026-08-20T13:00:00+08:00", "PB", "UBOT", channel="bot_push", source="bot",
           user_agent="Mozilla/5.0 (compatible; Googlebot/2.1)"),
    _click("c-bot-2", "2026-08-20T13:05:00+08:00", "PB", "UBOT", channel="bot_push", source="bot",
           user_agent="python-requests/2.31"),
    _click("c-bot-3", "2026-08-20T13:10:00+08:00", "PB", "UBOT2", channel="bot_push", source="bot"),
]


def pg_tables(conn) -> dict[str, list[tuple]]:
    """Every table of the PostgreSQL copy's marts schema, all rows, times in UTC, sorted."""
    cur = conn.execute("select table_name from information_schema.tables where table_schema = 'marts' order by 1")
    return {f"marts.{t}": _rows(conn.execute(f'select * from marts."{t}"').fetchall()) for (t,) in cur.fetchall()}


def _rows(rows) -> list[tuple]:
    utc = lambda v: v.astimezone(UTC) if hasattr(v, "tzinfo") and getattr(v, "tzinfo", None) else v  # noqa: E731
    return sorted((tuple(utc(v) for v in r) for r in rows), key=repr)


@pytest.fixture(scope="module")
def golden(tmp_path_factory, spark_cfg, postgres):
    """August released; a BI reader connected to the DuckDB copy and one in a REPEATABLE READ
    transaction on the PostgreSQL copy; September released while both hold them open.
    The config, and what the readers saw."""
    import psycopg
    from sqlalchemy import create_engine

    from o2p.bi import _pg_url

    base = tmp_path_factory.mktemp("bi")
    ref = base / "reference"
    cfg_file = base / "o2p.yaml"
    pg_url = postgres.database("bi")
    cfg_file.write_text(f'reference_dir: "{ref}"\nquality:\n  max_event_age_days: 36500\n'
                        'spark:\n  conf:\n    spark.sql.shuffle.partitions: "2"\n'
                        f'bi:\n  postgres_url: "{pg_url}"\n')
    cfg = load_config(cfg_file, home=base / "home")
    write_reference(ref, [p for p in PROMOTERS if p != "PN"])
    land(cfg, AUGUST + EXTRA_CLICKS)
    pipeline(cfg, "2026-08")
    copy = layout.bi_duckdb_file(cfg.home_path)
    engine = create_engine(f"duckdb:///{copy}", connect_args={"read_only": True})
    seen = {"pg_url": pg_url}
    with engine.connect() as held, psycopg.connect(_pg_url(pg_url)) as pg_reader:
        pg_reader.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        seen["pg_before"] = pg_tables(pg_reader)   # the transaction's snapshot is taken here
        seen["before"] = marts_periods(held)
        inode = copy.stat().st_ino
        write_reference(ref, list(PROMOTERS))
        land(cfg, SEPTEMBER)
        seen["folder"] = pipeline(cfg, "2026-09")   # raises if the release failed
        seen["held"] = marts_periods(held)
        seen["replaced"] = copy.stat().st_ino != inode
        seen["pg_held"] = pg_tables(pg_reader)
        pg_reader.rollback()
    engine.dispose()   # the pool's connection closed: the next one opens the new file
    with engine.connect() as fresh:
        seen["reconnected"] = marts_periods(fresh)
    engine.dispose()
    return cfg, seen


def test_a_reader_holding_the_bi_copy_neither_blocks_the_release_nor_sees_half(golden):
    cfg, seen = golden
    assert (seen["folder"] / "payout.csv").exists()
    assert seen["replaced"]
    assert seen["before"] == seen["held"] == ["2026-08"]
    assert seen["reconnected"] == ["2026-08", "2026-09"]
    assert not list(layout.bi_root(cfg.home_path).glob(".*.tmp*"))   # no temporary file left


def every_relation(db) -> dict[str, list[tuple]]:
    """Every table and view of a DuckDB file (dbt's test audit tables aside), all rows, sorted."""
    with duckdb.connect(str(db), read_only=True) as con:
        names = con.execute("select table_schema, table_name from information_schema.tables "
                            "where table_schema not like '%dbt_test__audit' order by all").fetchall()
        return {f"{s}.{t}": sorted(con.execute(f'select * from "{s}"."{t}"').fetchall(), key=repr)
                for s, t in names}


def test_a_moved_home_answers_every_table_and_view_the_same(golden, tmp_path):
    cfg, _ = golden
    before = every_relation(layout.duckdb_file(cfg.home_path))
    assert {"marts.fct_commission_entitlements", "marts.fct_anomalies",
            "intermediate.int_order_lines_netted_as_of_period", "staging.stg_landing__orders"} <= set(before)
    moved = tmp_path / "moved"
    shutil.copytree(cfg.home_path, moved / "home")
    aside = cfg.home_path.with_name("home-aside")   # the original is gone while the copy is read
    cfg.home_path.rename(aside)
    try:
        after = every_relation(layout.duckdb_file(moved / "home"))
    finally:
        aside.rename(cfg.home_path)
    assert after == before
    with duckdb.connect(str(layout.duckdb_file(moved / "home")), read_only=True) as con:
        views = con.execute("select view_name, sql from duckdb_views() where not internal").fetchall()
    frozen = (str(cfg.home_path), str(period_end_us("2026-09")), str(period_end_us("2026-08")), "read_parquet")
    assert [(v, f) for v, sql in views for f in frozen if f in sql] == []
    assert all(before[name] for name in ("marts.fct_commission_entitlements", "staging.stg_landing__orders"))


def test_movements_sum_across_periods_where_entitlements_double_count(golden):
    """August: PB's OB3 3000 is entitled; September: refunded in full → 0, a movement of −3000.
    Summed over both periods the movements give September's entitlements, not their sum."""
    cfg, _ = golden
    with duckdb.connect(str(layout.bi_duckdb_file(cfg.home_path)), read_only=True) as con:
        ob3 = con.execute("select period, previous_period, entitled_fen, previously_entitled_fen, movement_fen "
                          "from marts.fct_commission_movements where promoter_id = 'PB' and order_id = 'OB3' "
                          "and role = 'direct' order by period").fetchall()
        assert ob3 == [("2026-08", None, 3000, 0, 3000), ("2026-09", "2026-08", 0, 3000, -3000)]
        moved = con.execute("select sum(movement_fen) from marts.fct_commission_movements").fetchone()[0]
        latest = con.execute("select sum(entitled_fen) from marts.fct_commission_entitlements "
                             "where period = '2026-09'").fetchone()[0]
        naive = con.execute("select sum(entitled_fen) from marts.fct_commission_entitlements").fetchone()[0]
        assert moved == latest < naive
        tz = con.execute("select typeof(paid_at) from marts.fct_commission_movements limit 1").fetchone()[0]
        assert tz == "TIMESTAMP WITH TIME ZONE"


def test_the_date_dimension_is_the_shanghai_calendar_of_the_periods(golden):
    from o2p.timeutil import period_start_us

    cfg, _ = golden
    with duckdb.connect(str(layout.bi_duckdb_file(cfg.home_path)), read_only=True) as con:
        rows = con.execute("select date_day::varchar, period, day_start_us, day_end_us, iso_day_of_week "
                           "from marts.dim_date where date_day in ('2026-08-31', '2026-09-01') order by 1").fetchall()
    assert rows == [("2026-08-31", "2026-08", period_start_us("2026-09") - 86_400_000_000, period_start_us("2026-09"), 1),
                    ("2026-09-01", "2026-09", period_start_us("2026-09"), period_start_us("2026-09") + 86_400_000_000, 2)]


def test_a_refresh_that_fails_warns_and_never_fails_the_step(tmp_path, capfd):
    """No warehouse to copy (a stand-in for any error): the asset logs a warning and yields no
    materialization; it raises nothing, so the run it is in (a release) succeeds."""
    from dagster import build_asset_context

    from pipelines.assets.bi.assets import o2p_bi
    from pipelines.resources import O2PConfig

    (tmp_path / "o2p.yaml").write_text("{}\n")
    (tmp_path / "home" / "bi").mkdir(parents=True)
    (tmp_path / "home" / "bi" / "o2p_bi.duckdb").write_bytes(b"the previous copy")
    with build_asset_context(partition_key="2026-08-01") as context:
        events = list(o2p_bi(context, O2PConfig(config_path=str(tmp_path / "o2p.yaml"), home=str(tmp_path / "home"))))
    assert events == []
    assert "WARNING" in (err := capfd.readouterr().err) and "the BI copy was not refreshed" in err
    assert (tmp_path / "home" / "bi" / "o2p_bi.duckdb").read_bytes() == b"the previous copy"


def bi_rows(cfg, sql: str) -> list[tuple]:
    with duckdb.connect(str(layout.bi_duckdb_file(cfg.home_path)), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_the_postgresql_copy_equals_the_duckdb_marts_and_a_reader_sees_old_or_new_never_half(golden):
    import psycopg

    from o2p.bi import _pg_url

    cfg, seen = golden
    with duckdb.connect(str(layout.bi_duckdb_file(cfg.home_path)), read_only=True) as con:
        names = [t for (t,) in con.execute("select table_name from duckdb_tables() where schema_name = 'marts' "
                                           "order by 1").fetchall()]
        duck = {f"marts.{t}": _rows(con.execute(f'select * from marts."{t}"').fetchall()) for t in names}
    with psycopg.connect(_pg_url(seen["pg_url"])) as fresh:
        now = pg_tables(fresh)
    assert set(now) == set(duck) >= {"marts.fct_orders", "marts.fct_commission_estimated_vs_settled",
                                     "marts.fct_promoter_daily", "marts.fct_funnel_daily", "marts.dim_promoters"}
    assert now == duck   # row for row
    # the REPEATABLE READ reader saw August's tables, whole, before and after September's refresh
    assert seen["pg_held"] == seen["pg_before"]
    periods = lambda tables: sorted({r[0] for r in tables["marts.fct_commission_entitlements"]})  # noqa: E731
    assert periods(seen["pg_before"]) == ["2026-08"] and periods(now) == ["2026-08", "2026-09"]
    assert len(seen["pg_before"]["marts.fct_orders"]) == 16 and len(now["marts.fct_orders"]) == 19


# (period, promoter): estimated, settled, pending, voided, carried — by hand from the golden
# world's comments (tests/integration/test_golden.py), after September's release:
ESTIMATED_VS_SETTLED = {
    # PA: OA1 1235 + OA3 1000 + OA4 1000 direct; overrides on PB's OB1 1 (0.5 → 1), OB2 400, OB3 600,
    # OX1 200. Refunds void OB2's 100 (400 → 300) and OB3's 600. August's release booked 3336 and
    # paid it; September's booked −600 + 1000 = 400, below the threshold: carried.
    ("2026-08", "PA"): (4436, 3336, 0, 700, 400),
    # PB: OB1 3, OB2 2000 (refund 5000 before eligibility: 1500, 500 void), OB3 3000 (refunded
    # in September: void), OX1 1000. August paid 5503; September booked −3000, carried (negative).
    ("2026-08", "PB"): (6003, 5503, 0, 3500, -3000),
    ("2026-08", "PC"): (999, 0, 0, 0, 999),            # below the threshold in both releases
    ("2026-08", "PD"): (2000, 2000, 0, 0, 0),          # OD1 paid in August, OD2 in September
    ("2026-08", "PE"): (2000, 0, 0, 0, 2000),          # no payee
    ("2026-08", "PN"): (1500, 1500, 0, 0, 0),          # unknown in August, booked and paid in September
    ("2026-08", "PS"): (2000, 0, 0, 0, 2000),          # OS1 booked in September, PS suspended: carried
    ("2026-08", "PBIG"): (5_125_000, 5_125_000, 0, 0, 0),
    ("2026-08", "PT"): (400_000, 400_000, 0, 0, 0),
    ("2026-09", "PBIG"): (1_250_000, 1_250_000, 0, 0, 0),
    ("2026-09", "PT"): (80_000, 80_000, 0, 0, 0),
    ("2026-09", "PS"): (0, 0, 0, 0, 0),                # OS2 paid after the suspension: nothing estimated
}


def test_every_fen_of_estimated_commission_is_settled_pending_voided_or_carried(golden):
    cfg, seen = golden
    rows = bi_rows(cfg, "select period, promoter_id, estimated_fen, settled_fen, pending_fen, voided_fen, carried_fen "
                        "from marts.fct_commission_estimated_vs_settled order by all")
    got = {(p, pr): tuple(v) for p, pr, *v in rows}
    assert got == ESTIMATED_VS_SETTLED
    assert all(e == s + p + v + c for e, s, p, v, c in got.values())
    # settled sums to what the two releases paid, carried to what September carried out
    august, = (seen["folder"].parent.parent / "2026-08").iterdir()
    paid: dict[str, int] = {}
    for folder in (august, seen["folder"]):
        for r in read_csv(folder / "payout.csv"):
            paid[r["promoter_id"]] = paid.get(r["promoter_id"], 0) + fen(r["gross_cny"])
    settled: dict[str, int] = {}
    carried: dict[str, int] = {}
    for (_, promoter), (_, s, _, _, c) in got.items():
        settled[promoter] = settled.get(promoter, 0) + s
        carried[promoter] = carried.get(promoter, 0) + c
    assert {p: v for p, v in settled.items() if v} == paid
    assert {p: v for p, v in carried.items() if v} == {
        r["promoter_id"]: r["balance_fen"] for r in read_people_csv(seen["folder"] / "carried.csv")}


def test_orders_have_one_row_each_with_gmv_refunds_net_and_status(golden):
    cfg, _ = golden
    rows = {r[0]: r[1:] for r in bi_rows(cfg, "select order_id, paid_date::varchar, gmv_fen, refunded_fen, net_fen, "
                                              "promoter_id, attribution_reason, status, line_count from marts.fct_orders")}
    assert len(rows) == 19   # 16 August orders (OB1's second order_paid counted once), 3 in September
    assert rows["OB1"] == ("2026-08-02", 25, 0, 25, "PB", "share_token", "confirmed", 1)
    assert rows["OB2"] == ("2026-08-05", 20000, 5000, 15000, "PB", "last_click", "partially_refunded", 1)
    assert rows["OB3"] == ("2026-08-03", 30000, 30000, 0, "PB", "last_click", "refunded", 1)
    assert rows["OZ1"] == ("2026-08-02", 5000, 5000, 0, None, "organic", "refunded", 1)   # 6000 capped at 5000
    assert rows["OD2"][0] == "2026-08-31"           # 15:30Z is 23:30 in Shanghai
    assert rows["OA4"][0] == "2026-08-15"
    ts = bi_rows(cfg, "select typeof(paid_at), epoch_us(paid_at) = paid_at_us from marts.fct_orders limit 1")
    assert ts == [("TIMESTAMP WITH TIME ZONE", True)]


def test_daily_promoter_facts_equal_a_hand_count(golden):
    cfg, _ = golden
    rows = {(d, p): v for d, p, *v in bi_rows(
        cfg, "select date_day::varchar, promoter_id, clicks, valid_clicks, bot_clicks, flood_clicks, orders, gmv_fen, "
             "estimated_commission_fen from marts.fct_promoter_daily")}
    # 08-01: PA's clicks c-OA1 and c-OX1-a, PA's order OA1 (12345 → 1235)
    assert rows[("2026-08-01", "PA")] == [2, 2, 0, 0, 1, 12345, 1235]
    # 08-02: PB's c-OB1 and c-OX1-b, order OB1 (25 → 3); PA's override on it (0.5 → 1) in PA's row
    assert rows[("2026-08-02", "PB")] == [2, 2, 0, 0, 1, 25, 3]
    assert rows[("2026-08-02", "PA")] == [0, 0, 0, 0, 0, 0, 1]
    # 08-20: PA's 21 flood clicks; PB's bot-pushed clicks (2 ua_bot, 1 valid); PS's c-OS1 and OS1
    assert rows[("2026-08-20", "PA")] == [21, 0, 0, 21, 0, 0, 0]
    assert rows[("2026-08-20", "PB")] == [3, 1, 2, 0, 0, 0, 0]
    assert rows[("2026-08-20", "PS")] == [1, 1, 0, 0, 1, 20000, 2000]
    totals = bi_rows(cfg, "select sum(clicks), sum(orders), sum(gmv_fen) from marts.fct_promoter_daily")
    golden_clicks = sum(e["event_type"] == "click" for e in AUGUST + SEPTEMBER)
    orders = bi_rows(cfg, "select count(*), sum(gmv_fen) from marts.fct_orders where promoter_id is not null")
    assert totals == [(golden_clicks + len(EXTRA_CLICKS), *orders[0])]


def test_the_funnel_equals_a_hand_count(golden):
    cfg, _ = golden
    rows = {(d, c, s): v for d, c, s, *v in bi_rows(
        cfg, "select date_day::varchar, channel, source, clicks, valid_clicks, attributed_orders, refunded_orders "
             "from marts.fct_funnel_daily")}
    # 08-03: clicks c-OB3 and c-OD1; orders OB3, OD1 and OX1 (won by c-OX1-b of 08-02, also in
    # group); OB3 refunded in September
    assert rows[("2026-08-03", "group", "storefront")] == [2, 2, 3, 1]
    assert rows[("2026-08-05", "group", "storefront")] == [1, 1, 1, 1]        # OB2, partially refunded
    assert rows[("2026-08-20", "moments", "storefront")] == [21, 0, 0, 0]      # the flood
    assert rows[("2026-08-20", "bot_push", "bot")] == [3, 1, 0, 0]
    assert rows[("2026-08-20", "group", "storefront")] == [1, 1, 1, 0]         # OS1
    assert bi_rows(cfg, "select sum(attributed_orders) from marts.fct_funnel_daily") == bi_rows(
        cfg, "select count(*) from marts.fct_orders where promoter_id is not null")


def test_the_dimensions_hold_promoters_and_products(golden):
    cfg, _ = golden
    assert bi_rows(cfg, "select promoter_id, upline_id, tier, has_payee, suspended_at_us is not null, "
                        "typeof(joined_at) from marts.dim_promoters where promoter_id in ('PB', 'PE', 'PS') "
                        "order by 1") == [
        ("PB", "PA", "silver", True, False, "TIMESTAMP WITH TIME ZONE"),
        ("PE", None, "silver", False, False, "TIMESTAMP WITH TIME ZONE"),
        ("PS", None, "silver", True, True, "TIMESTAMP WITH TIME ZONE")]
    assert bi_rows(cfg, "select * from marts.dim_products order by 1") == [
        ("SKU1", "PR1", "X", "beauty"), ("SKU2", "PR2", "Y", "food")]


def test_a_postgresql_copy_that_fails_is_a_warning_in_the_metadata_and_the_duckdb_copy_stands(tmp_path, capfd):
    """bi.postgres_url names a server that is not there: the DuckDB copy is published, the step
    succeeds, and the error is in the log and the materialization's metadata."""
    import socket

    from dagster import build_asset_context

    from pipelines.assets.bi.assets import o2p_bi
    from pipelines.resources import O2PConfig

    with socket.socket() as s:   # a free port: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "o2p.yaml").write_text(f'bi:\n  postgres_url: "postgresql+psycopg://o2p@127.0.0.1:{port}/bi"\n')
    home = tmp_path / "home"
    layout.warehouse_root(home).mkdir(parents=True)
    with duckdb.connect(str(layout.duckdb_file(home))) as con:
        con.execute("create schema marts; create table marts.fct_x as select 1 as n")
    with build_asset_context(partition_key="2026-08-01") as context:
        events = list(o2p_bi(context, O2PConfig(config_path=str(tmp_path / "o2p.yaml"), home=str(home))))
    (output,) = events
    assert "connection" in output.metadata["postgres_error"].text.lower()
    assert output.metadata["rows"].data == {"marts.fct_x": 1}
    assert "the PostgreSQL copy was not refreshed" in capfd.readouterr().err
    assert bi_rows(load_config(tmp_path / "o2p.yaml", home=home), "select n from marts.fct_x") == [(1,)]

# ---- the period's page (o2p report) and the models' docs (o2p docs), in a browser ------------------
def report_data(page) -> tuple[dict, str]:
    import json
    import re

    text = page.read_text(encoding="utf-8")
    block = re.search(r'<script type="application/json" id="o2p-report-data">(.*?)</script>', text, re.S)
    return json.loads(block.group(1).replace("<\\/", "</")), text


def test_the_release_writes_the_period_report_and_its_numbers_are_the_marts_and_the_files(golden):
    """September's release wrote reports/2026-09.html; every figure is recomputed here from the
    marts' rows and the released files; `o2p report` on the BI copy gives the same figures."""
    import json

    from o2p.release import read_people_csv
    from o2p.timeutil import period_start_us, shanghai_day
    from tests.conftest import run_o2p

    cfg, seen = golden
    folder = seen["folder"]
    data, text = report_data(layout.report_file(cfg.home_path, "2026-09"))
    assert data["period"] == "2026-09" and data["missing"] == []
    assert data["source"] == str(layout.duckdb_file(cfg.home_path))   # made inside the release's run

    start, end = period_start_us("2026-09"), period_end_us("2026-09")
    with duckdb.connect(str(layout.bi_duckdb_file(cfg.home_path)), read_only=True) as con:
        orders = con.execute("select paid_at_us, promoter_id, gmv_fen from marts.fct_orders").fetchall()
        shown = con.execute("select date_day::varchar, estimated_commission_fen from marts.fct_promoter_daily").fetchall()
        evs = con.execute("select estimated_fen, settled_fen, pending_fen, voided_fen, carried_fen "
                          "from marts.fct_commission_estimated_vs_settled where period = '2026-09'").fetchall()
        kinds = con.execute("select kind, amount_fen from marts.fct_anomalies where period = '2026-09'").fetchall()
    days: dict[str, dict] = {}
    for at, promoter, gmv in orders:
        if start <= at < end:
            d = days.setdefault(shanghai_day(at), {"orders": 0, "attributed_orders": 0, "gmv_fen": 0, "commission_fen": 0})
            d["orders"] += 1
            d["attributed_orders"] += promoter is not None
            d["gmv_fen"] += gmv
    for day, amount in shown:
        if day in days:
            days[day]["commission_fen"] += amount
    assert days, "the golden September has orders paid in September"
    assert data["daily"] == [{"day": k, **v} for k, v in sorted(days.items())]
    totals = [sum(r[i] for r in evs) for i in range(5)]
    assert data["estimated_vs_settled"] == dict(zip(
        ["estimated_fen", "settled_fen", "pending_fen", "voided_fen", "carried_fen"], totals, strict=True))
    assert totals[0] > 0 and totals[0] == sum(totals[1:])      # every fen of the estimate accounted for
    anomalies: dict[str, list[int]] = {}
    for kind, amount in kinds:
        anomalies.setdefault(kind, []).append(amount or 0)
    assert data["anomalies"] == [{"kind": k, "count": len(v), "amount_fen": sum(v)} for k, v in sorted(anomalies.items())]

    manifest = json.loads((folder / "manifest.json").read_text())
    batch = data["batch"]
    assert (batch["gross_fen"], batch["tax_fen"], batch["net_fen"]) == (
        manifest["totals_fen"]["gross"], manifest["totals_fen"]["tax"], manifest["totals_fen"]["net"])
    paid = sorted(((r["promoter_id"], r["gross_fen"], r["tax_fen"], r["net_fen"])
                   for r in read_people_csv(folder / "payout.csv")), key=lambda p: (-p[1], p[0]))
    assert paid and [(p["promoter_id"], p["gross_fen"], p["tax_fen"], p["net_fen"])
                     for p in data["top_promoters"]] == paid[:10]
    carried: dict[str, list[int]] = {}
    for r in read_people_csv(folder / "carried.csv"):
        carried.setdefault(r["reason"], []).append(r["balance_fen"])
    assert carried and data["carried_by_reason"] == [
        {"reason": k, "promoters": len(v), "carried_fen": sum(v)} for k, v in sorted(carried.items())]
    # the page shows the figures it carries: the cards and the tables, in CNY with their fen
    for amount in (batch["gross_fen"], batch["net_fen"], *(p[1] for p in paid[:10])):
        assert f'data-fen="{amount}"' in text
    assert text.count("<svg") == 3     # by day, estimated vs settled, top promoters

    env = {"O2P_CONFIG": str(cfg.home_path.parent / "o2p.yaml"), "O2P_HOME": str(cfg.home_path)}
    out = cfg.home_path.parent / "cli-report.html"
    assert run_o2p("report", "--period", "2026-09", "--out", str(out), env=env).stdout.strip() == str(out)
    again, _ = report_data(out)
    assert again.pop("source") == str(layout.bi_duckdb_file(cfg.home_path))
    data.pop("source")
    assert again == data
    refused = run_o2p("report", "--period", "2026-9", env=env, check=False)
    assert refused.returncode == 2 and "--period: period '2026-9' is not YYYY-MM" in refused.stderr


def test_the_report_and_the_docs_render_offline_in_a_browser(golden):
    """Headless Chromium with no network: the report's charts draw, the dbt docs show a mart's
    description and the exposures; nothing is fetched from anywhere. Screenshots kept."""
    from tests.conftest import run_o2p
    from tests.integration.test_datadocs_browser import (
        ARTIFACTS,
        _assert_local_only,
        _network,
        _open,
        _wait,
        browser,
    )

    cfg, _ = golden
    env = {"O2P_CONFIG": str(cfg.home_path.parent / "o2p.yaml"), "O2P_HOME": str(cfg.home_path)}
    docs = Path(run_o2p("docs", env=env).stdout.strip().splitlines()[-1])
    assert docs == layout.docs_root(cfg.home_path) / "index.html"
    report = layout.report_file(cfg.home_path, "2026-09")
    with browser() as d:
        _open(d, report)
        _assert_local_only(d, report)
        charts = d.execute_script("return [...document.querySelectorAll('svg')].map(s => s.getBoundingClientRect().width)")
        assert len(charts) == 3 and min(charts) > 300, charts
        headings = d.execute_script("return [...document.querySelectorAll('h2')].map(h => h.textContent)")
        assert headings == ["By day", "Estimated vs settled", "Top promoters", "Carried to the next period, by reason",
                            "Anomalies", "Returned transfers"]
        d.set_window_size(1280, min(4000, d.execute_script("return document.body.scrollHeight") + 40))
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        assert d.save_screenshot(str(ARTIFACTS / "report-2026-09.png"))

        d.set_window_size(1600, 1000)
        d.get_log("performance")
        d.get(docs.as_uri() + "#!/model/model.o2p.fct_commission_movements")
        _wait("the docs show the mart's description", lambda: "against the previous period computed in"
              in d.execute_script("return document.body.innerText"), timeout=30)
        urls, _ = _network(d)   # (dbt's page asks for its unrendered icon templates as files: harmless)
        assert urls and [u for u in urls if not u.startswith(("file://", "data:"))] == []
        assert d.save_screenshot(str(ARTIFACTS / "docs-fct_commission_movements.png"))
        d.get(docs.as_uri() + "#!/exposure/exposure.o2p.monthly_report")
        _wait("the docs show the report's exposure", lambda: "One self-contained HTML page per period"
              in d.execute_script("return document.body.innerText"), timeout=30)
