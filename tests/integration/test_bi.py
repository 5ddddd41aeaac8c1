"""BI (issue #14): what analysts read, on the golden world (tests/integration/test_golden.py)
released for August and September 2026 through the real pipeline, last click, cumulative tax.

- a copy of `$O2P_HOME` moved to another folder answers every table and view the same;
- commission movements sum where entitlements double-count; the calendar is Shanghai's;
- the BI copy, held open through duckdb_engine (Superset's driver) while September's run and
  release complete: neither is delayed or failed, the open connection reads August's state
  until it reconnects, then September's.
"""

import shutil
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
    land,
    pipeline,
    write_reference,
)

pytestmark = pytest.mark.integration


def marts_periods(conn) -> list[str]:
    from sqlalchemy import text

    return [r[0] for r in conn.execute(text("select distinct period from marts.fct_commission_entitlements order by 1"))]


@pytest.fixture(scope="module")
def golden(tmp_path_factory, spark_cfg):
    """August released; a BI reader connected; September released while it holds the copy open.
    The config, and what the reader saw."""
    from sqlalchemy import create_engine

    base = tmp_path_factory.mktemp("bi")
    ref = base / "reference"
    cfg_file = base / "o2p.yaml"
    cfg_file.write_text(f'reference_dir: "{ref}"\nquality:\n  max_event_age_days: 36500\n'
                        'spark:\n  conf:\n    spark.sql.shuffle.partitions: "2"\n')
    cfg = load_config(cfg_file, home=base / "home")
    write_reference(ref, [p for p in PROMOTERS if p != "PN"])
    land(cfg, AUGUST)
    pipeline(cfg, "2026-08")
    copy = layout.bi_duckdb_file(cfg.home_path)
    engine = create_engine(f"duckdb:///{copy}", connect_args={"read_only": True})
    seen = {}
    with engine.connect() as held:
        seen["before"] = marts_periods(held)
        inode = copy.stat().st_ino
        write_reference(ref, list(PROMOTERS))
        land(cfg, SEPTEMBER)
        seen["folder"] = pipeline(cfg, "2026-09")   # raises if the release failed
        seen["held"] = marts_periods(held)
        seen["replaced"] = copy.stat().st_ino != inode
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
        rows = con.execute("select order_id, role, paid_fen, entitled_fen, paid_at_us "
                           "from marts.fct_commission_entitlements where period = '2026-09'").fetchall()
        kinds = con.execute("select kind, amount_fen from marts.fct_anomalies where period = '2026-09'").fetchall()
    days: dict[str, dict] = {}
    for order, role, paid, entitled, at in rows:
        if start <= at < end:
            d = days.setdefault(shanghai_day(at), {"orders": set(), "gmv_fen": 0, "commission_fen": 0})
            d["orders"].add(order)
            d["gmv_fen"] += paid if role == "direct" else 0
            d["commission_fen"] += entitled
    assert days, "the golden September has orders paid in September"
    assert data["daily"] == [{"day": k, "orders": len(v["orders"]), "gmv_fen": v["gmv_fen"],
                              "commission_fen": v["commission_fen"]} for k, v in sorted(days.items())]
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
    for fen in (batch["gross_fen"], batch["net_fen"], *(p[1] for p in paid[:10])):
        assert f'data-fen="{fen}"' in text
    assert text.count("<svg") == 2     # by day, top promoters

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
        assert len(charts) == 2 and min(charts) > 300, charts
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
