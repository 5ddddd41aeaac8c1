"""When a release may reuse the commission build of an earlier run (pipelines/lib/builds.py): only
while nothing it was built from has changed, the tables hold what it built, its gate passed and
the BI marts were built after it. Real files and a real DuckDB warehouse; no Dagster, no dbt."""

import os

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from expectations.runner import SuiteResult
from o2p import layout
from o2p.config import load_config
from o2p.gates import Gate
from pipelines.assets.commission.assets import dbt_vars
from pipelines.lib import builds, quality

P = "2026-10"


@pytest.fixture
def home(tmp_path):
    cfg = load_config(home=tmp_path)
    for path in (cfg.landing_path / "clicks" / "event_date=2026-10-03" / "o2p.clicks.v1+0+0-9.parquet",
                 cfg.warehouse_path / layout.ORDER_ATTRIBUTION / "event_date=2026-10-03" / "part-0.parquet"):
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"x": [1, 2]}), path)
    layout.reference_dir(cfg.warehouse_path).mkdir(parents=True)
    pq.write_table(pa.table({"promoter_id": ["P1"]}), layout.reference_file(cfg.warehouse_path, "promoters"))
    with duckdb.connect(str(cfg.duckdb_path)) as con:
        con.execute("create schema marts")
        con.execute("create table marts.fct_commission_entitlements as "
                    "select * from (values ('2026-09', 'P1', 100), ('2026-10', 'P1', 250)) t(period, promoter_id, amount_fen)")
        con.execute("create table marts.fct_anomalies as select '2026-10' as period, 'late_refund' as kind")
    return cfg


def build(cfg, run_id: str, *, whole_project: bool = True, gate_passes: bool = True) -> None:
    """What commission_dbt records around a successful dbt build of P, and its GX gate after it."""
    inputs = builds.fingerprint(cfg, dbt_vars(cfg, P))
    builds.starting(cfg, inputs, [P])
    with duckdb.connect(str(cfg.duckdb_path), read_only=True) as con:
        rows = builds.money_rows(con, P)
    builds.built(cfg, inputs, P, run_id, rows, whole_project)
    quality.record(cfg, P, run_id, SuiteResult(Gate.COMMISSION, gate_passes, 9, rows=1))


def current(cfg, period=P):
    return builds.current(cfg, period, dbt_vars(cfg, period))


def test_a_release_right_after_a_whole_build_reuses_it_with_its_gate(home):
    build(home, "run-1")
    reuse, why = current(home)
    assert why == ""
    assert (reuse.run_id, reuse.bi_run_id) == ("run-1", "run-1")
    assert reuse.commission == {"suite": "commission", "success": True, "expectations": 9, "rows": 1,
                                "failures": [], "error": None}


def test_money_builds_of_each_month_then_the_bi_marts_once_are_all_reusable(home):
    # `o2p run`: the money path of 2026-09 and 2026-10, the whole project in the last month's run
    build(home, "run-10", whole_project=False)
    assert current(home)[1] == "the BI marts were not built after the last money build"
    inputs = builds.fingerprint(home, dbt_vars(home, "2026-11"))
    builds.starting(home, inputs, ["2026-11"])
    builds.built(home, inputs, "2026-11", "run-11", {"entitlements": [0, "0"], "anomalies": [0, "0"]}, True)
    reuse, _ = current(home)
    assert (reuse.run_id, reuse.bi_run_id) == ("run-10", "run-11")


@pytest.mark.parametrize("change, reason", [
    ("a late file landed", "what dbt reads"),
    ("a landed file rewritten", "what dbt reads"),
    ("attribution run again", "what dbt reads"),
    ("other reference data", "what dbt reads"),
    ("another setting", "what dbt reads"),
    ("the rows changed", "the money marts of 2026-10 are not the rows run run-1 built"),
    ("a build of the month failed", "no build of 2026-10 is recorded on the current inputs"),
    ("a money build of another month", "the BI marts were not built after the last money build"),
])
def test_anything_changed_since_the_build_means_building_again(home, change, reason):
    build(home, "run-1")
    clicks = home.landing_path / "clicks" / "event_date=2026-10-03" / "o2p.clicks.v1+0+0-9.parquet"
    if change == "a late file landed":
        pq.write_table(pa.table({"x": [3]}), clicks.with_name("o2p.clicks.v1+0+10-10.parquet"))
    elif change == "a landed file rewritten":
        st = clicks.stat()
        os.utime(clicks, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    elif change == "attribution run again":
        out = home.warehouse_path / layout.ORDER_ATTRIBUTION / "event_date=2026-10-03"
        (out / "part-0.parquet").unlink()
        pq.write_table(pa.table({"x": [1, 2]}), out / "part-1.parquet")
    elif change == "other reference data":
        pq.write_table(pa.table({"promoter_id": ["P2"]}), layout.reference_file(home.warehouse_path, "promoters"))
    elif change == "another setting":
        (home.home_path / "other.yaml").write_text("settlement:\n  return_window_days: 30\n")
        home = load_config(home.home_path / "other.yaml", home=home.home_path)
    elif change == "the rows changed":
        with duckdb.connect(str(home.duckdb_path)) as con:
            con.execute("update marts.fct_commission_entitlements set amount_fen = 251 where period = '2026-10'")
    elif change == "a build of the month failed":
        builds.starting(home, builds.fingerprint(home, dbt_vars(home, P)), [P])
    elif change == "a money build of another month":
        inputs = builds.fingerprint(home, dbt_vars(home, "2026-09"))
        builds.starting(home, inputs, ["2026-09"])
        builds.built(home, inputs, "2026-09", "run-2", {}, whole_project=False)
    reuse, why = current(home)
    assert reuse is None
    assert why.startswith(reason), why


def test_the_same_reference_bytes_written_again_still_reuse(home):
    # the CLI types the reference CSVs again before every release: same rows, same bytes
    build(home, "run-1")
    ref = layout.reference_file(home.warehouse_path, "promoters")
    pq.write_table(pa.table({"promoter_id": ["P1"]}), ref)
    assert current(home)[0].run_id == "run-1"


def test_a_failed_gate_is_never_reused(home):
    build(home, "run-1", gate_passes=False)
    assert current(home) == (None, "the commission gate did not pass in run run-1")


def test_a_period_never_built_is_not_reusable(home):
    build(home, "run-1")
    assert current(home, "2026-09") == (None, "no build of 2026-09 is recorded on the current inputs")


def test_a_changed_dbt_model_or_gate_means_building_again(home, monkeypatch):
    build(home, "run-1")
    model = builds.DBT_DIR / "models" / "marts" / "fct_commission_entitlements.sql"
    suites = builds.ROOT / "expectations" / "suites.py"
    real = type(model).read_bytes
    for changed in (model, suites):   # the file as a deploy would leave it: one more line
        monkeypatch.setattr(type(changed), "read_bytes",
                            lambda self, changed=changed: real(self) + (b"\n# edited" if self == changed else b""))
        assert current(home)[1].startswith("what dbt reads"), changed
        monkeypatch.undo()
        assert current(home)[0] is not None


def test_adopting_a_gate_records_it_as_this_runs_with_where_it_came_from(home):
    build(home, "run-1")
    reuse, _ = current(home)
    quality.adopt(home, P, "run-2", reuse.commission, from_run=reuse.run_id)
    assert quality.results(home, P, "run-2") == {"commission": {**reuse.commission, "reused_from_run": "run-1"}}
