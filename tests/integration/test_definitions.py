"""The Dagster definitions load (without starting Spark or touching Kafka) and the asset graph
is frozen: renaming an asset must be a deliberate change of this snapshot."""

import pytest

pytestmark = pytest.mark.integration

EXPECTED_ASSETS = {
    "attribution/clicks_validated", "attribution/order_attribution", "attribution/attribution_decisions",
    "bi/o2p_bi",
    "intermediate/int_clicks_aggregated_to_days", "intermediate/int_commission_lines_estimated",
    "intermediate/int_event_id_conflicts_joined_to_landed_copies",
    "intermediate/int_order_events_deduplicated",
    "intermediate/int_order_lines_joined_to_attribution", "intermediate/int_order_lines_joined_to_rates",
    "intermediate/int_order_lines_netted_as_of_period", "intermediate/int_order_lines_netted_to_date",
    "intermediate/int_order_lines_unnested", "intermediate/int_orders_joined_to_winning_clicks",
    "intermediate/int_orders_paid_first", "intermediate/int_refunds_deduplicated",
    "landing/clicks", "landing/orders", "landing/refunds",
    "marts/dim_date", "marts/dim_products", "marts/dim_promoters", "marts/fct_anomalies",
    "marts/fct_commission_entitlements", "marts/fct_commission_estimated_vs_settled",
    "marts/fct_commission_movements", "marts/fct_funnel_daily", "marts/fct_orders", "marts/fct_promoter_daily",
    "marts/fct_attribution_decisions",
    "payouts/payout_batch",
    "reference/commission_rules", "reference/products", "reference/promoters",
    "settlement/promoter_balances",
    # dbt sources read from tables no asset materializes (external: lineage only)
    "settlement/ledger_mirror", "settlement/released_balances", "warehouse/event_id_conflicts",
    "staging/stg_landing__orders", "staging/stg_landing__refunds",
    "staging/stg_reference__commission_rules", "staging/stg_reference__products",
    "staging/stg_reference__promoters",
    "staging/stg_settlement__ledger_mirror", "staging/stg_settlement__released_balances",
    "staging/stg_warehouse__event_id_conflicts", "staging/stg_warehouse__order_attribution",
    "staging/stg_attribution__decisions",
}


@pytest.fixture(scope="module")
def fresh_load(tmp_path_factory):
    """The definitions loaded in a fresh process (tests/integration/_load_definitions.py) under a
    config's text; each text loaded once for this module (a load costs a process and the imports
    of Dagster, dbt and GX)."""
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    script = REPO / "tests" / "integration" / "_load_definitions.py"
    done: dict[str, subprocess.CompletedProcess] = {}

    def load(text: str) -> subprocess.CompletedProcess:
        if text not in done:
            base = tmp_path_factory.mktemp("definitions")
            (base / "o2p.yaml").write_text(text)
            env = {**os.environ, "O2P_CONFIG": str(base / "o2p.yaml"), "O2P_HOME": str(base / "home")}
            done[text] = subprocess.run([sys.executable, str(script)], cwd=REPO, capture_output=True, text=True,
                                        timeout=300, env=env)
        return done[text]
    return load


LOOKBACK_10 = "attribution:\n  lookback_days: 10\n"


def test_definitions_load_and_graph_snapshot(fresh_load):
    from pipelines.definitions import defs
    from pipelines.lib import spark

    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == EXPECTED_ASSETS
    assert {j.name for j in defs.jobs} == {"reference_job", "attribution_job", "commission_job", "release_job"}
    checks = {f"{k.asset_key.to_user_string()}:{k.name}" for k in graph.asset_check_keys}
    assert {"marts/fct_commission_entitlements:gx_commission", "settlement/promoter_balances:gx_settlement",
            "payouts/payout_batch:gx_payout"} <= checks
    assert spark._session is None or _loads_without_spark(fresh_load)   # loading never starts a JVM


def _loads_without_spark(fresh_load) -> bool:
    """Other tests of this process may have started Spark: load the definitions in a fresh one
    (the load of the lookback test below: any valid config says whether loading starts Spark)."""
    proc = fresh_load(LOOKBACK_10)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return "spark session: None" in proc.stdout.splitlines()   # the script prints more after it


def test_partition_helpers():
    from pipelines.lib.partitions import period_dbt_vars, window_dates

    assert window_dates("2026-10-30", "2026-11-02") == ["2026-10-30", "2026-10-31", "2026-11-01", "2026-11-02"]
    v = period_dbt_vars("2026-12-01")
    assert v["period"] == "2026-12" and v["next_period"] == "2027-01"
    assert v["period_end_us"] - v["period_start_us"] == 31 * 86_400_000_000


def test_affected_range_of_late_clicks_and_orders():
    from pipelines.lib.partitions import affected_range

    # a late click of 10-05 can change floods of 10-04..10-06 and so orders up to 10-13
    assert affected_range({"2026-10-05"}, set(), 7) == ("2026-10-04", "2026-10-13")
    assert affected_range({"2026-10-05"}, {"2026-10-20"}, 7) == ("2026-10-04", "2026-10-20")
    assert affected_range(set(), {"2026-10-20"}, 7) == ("2026-10-20", "2026-10-20")
    assert affected_range({"2026-10-05"}, set(), 7, last_key="2026-10-08") == ("2026-10-04", "2026-10-08")
    assert affected_range({"2026-10-05"}, set(), 7, "wechat_lock", "2026-11-30") == ("2026-10-04", "2026-11-30")
    assert affected_range(set(), set(), 7) is None


def test_landing_sensor_requests_one_range_run_for_late_clicks(tmp_path):
    import pyarrow.parquet as pq
    from dagster import build_sensor_context

    from o2p.layout import SCHEMAS
    from pipelines.definitions import defs
    from pipelines.resources import O2PConfig

    for table, day in (("clicks", "2026-10-05"), ("orders", "2026-10-20")):
        d = tmp_path / "landing" / table / f"event_date={day}"
        d.mkdir(parents=True)
        pq.write_table(SCHEMAS[table].empty_table(), d / "x.parquet")
    sensor = defs.get_sensor_def("landing_sensor")
    with build_sensor_context(resources={"o2p": O2PConfig(home=str(tmp_path))}) as ctx:
        result = sensor(ctx)
        (req,) = result.run_requests
        assert (req.tags["dagster/asset_partition_range_start"], req.tags["dagster/asset_partition_range_end"]) == \
            ("2026-10-04", "2026-10-20")
        # the days landed become the landing assets' partition status in the UI
        assert sorted((e.asset_key.to_user_string(), e.partition) for e in result.asset_events) == [
            ("landing/clicks", "2026-10-05"), ("landing/orders", "2026-10-20")]
        assert ctx.cursor
        again = sensor(ctx)   # nothing new since the cursor: no run, no event
        assert not again.run_requests and not again.asset_events


def _land(home, table, day):
    import pyarrow.parquet as pq

    from o2p.layout import SCHEMAS

    d = home / "landing" / table / f"event_date={day}"
    d.mkdir(parents=True, exist_ok=True)
    pq.write_table(SCHEMAS[table].empty_table(), d / f"{table}-{day}.parquet")


def test_landing_sensor_sends_new_refunds_to_commission_of_their_month_and_later(tmp_path):
    from dagster import build_sensor_context

    from pipelines.definitions import defs
    from pipelines.resources import O2PConfig

    _land(tmp_path, "orders", "2026-09-20")
    _land(tmp_path, "orders", "2026-11-02")
    sensor = defs.get_sensor_def("landing_sensor")
    with build_sensor_context(resources={"o2p": O2PConfig(home=str(tmp_path))}) as ctx:
        (req,) = sensor(ctx).run_requests
        # attribution first; its success carries commission from the first month it touched
        assert req.job_name == "attribution_job" and req.tags["o2p/commission_from"] == "2026-09"
        _land(tmp_path, "refunds", "2026-10-05")   # a refund alone: no attribution, commission 10 and 11
        reqs = sensor(ctx).run_requests
        assert [(r.job_name, r.partition_key) for r in reqs] == [("commission_job", "2026-10"), ("commission_job", "2026-11")]
        _bi_in_the_last_run_only(reqs)


def test_automation_switches_say_which_switch_stops_them(tmp_path):
    from dagster import build_schedule_context, build_sensor_context

    from pipelines.definitions import defs
    from pipelines.resources import O2PConfig

    _land(tmp_path, "orders", "2026-09-20")
    cfg = tmp_path / "o2p.yaml"
    cfg.write_text("automation:\n  attribute_landed_days: false\n  monthly_release: false\n", encoding="utf-8")
    res = {"o2p": O2PConfig(config_path=str(cfg), home=str(tmp_path))}
    with build_sensor_context(resources=res) as ctx:
        skip = defs.get_sensor_def("landing_sensor")(ctx)
    assert "automation.attribute_landed_days is false" in skip.skip_message and str(cfg) in skip.skip_message
    with build_schedule_context(resources=res) as ctx:
        skip = defs.get_schedule_def("release_schedule")(ctx)
    assert "automation.monthly_release is false" in skip.skip_message


def test_release_schedule_releases_the_earliest_ended_period_not_released(tmp_path):
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from dagster import build_schedule_context

    from pipelines.definitions import defs
    from pipelines.resources import O2PConfig

    _land(tmp_path, "orders", "2026-09-20")
    res = {"o2p": O2PConfig(home=str(tmp_path))}
    tick = datetime(2026, 12, 1, 6, tzinfo=ZoneInfo("Asia/Shanghai"))
    with build_schedule_context(resources=res, scheduled_execution_time=tick) as ctx:
        req = defs.get_schedule_def("release_schedule")(ctx)
    # September is the first period and nothing is released: it goes first (periods in order)
    assert (req.job_name, req.partition_key) == ("release_job", "2026-09")
    early = datetime(2026, 9, 25, 6, tzinfo=ZoneInfo("Asia/Shanghai"))
    with build_schedule_context(resources=res, scheduled_execution_time=early) as ctx:
        skip = defs.get_schedule_def("release_schedule")(ctx)
    assert skip.skip_message == "the first period 2026-09 has not ended yet"


def _bi_in_the_last_run_only(reqs) -> None:
    """The BI marts hold no period: of the commission runs one sensor tick requests, only the last
    builds them and publishes the copy; the others run the money path with its checks."""
    from dagster import AssetKey

    from pipelines.assets.bi.assets import BI_COPY, BI_MODELS

    *first, last = reqs
    assert last.asset_selection is None   # the whole job
    for r in first:
        keys = set(r.asset_selection)
        assert {c.name for c in r.asset_check_keys} >= {"gx_commission", "assert_entitlement_within_net", "one_row_per_fct_commission_entitlements_period__promoter_id__order_id__line_id__role"}
        assert AssetKey(["marts", "fct_commission_entitlements"]) in keys and AssetKey(["marts", "fct_anomalies"]) in keys
        assert not keys & BI_MODELS and BI_COPY not in keys
    assert AssetKey(["marts", "fct_orders"]) in BI_MODELS and AssetKey(["marts", "dim_promoters"]) in BI_MODELS


def test_commission_follows_a_successful_attribution_run(tmp_path):
    from dagster import DagsterEvent, DagsterInstance, build_run_status_sensor_context
    from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus

    from pipelines.definitions import defs
    from pipelines.resources import O2PConfig

    for day in ("2026-09-20", "2026-10-03", "2026-11-02"):
        _land(tmp_path, "orders", day)
    sensor = defs.get_sensor_def("commission_after_attribution")
    res = {"o2p": O2PConfig(home=str(tmp_path))}

    def requests(tags):
        run = DagsterRun(job_name="attribution_job", run_id="a" * 36, status=DagsterRunStatus.SUCCESS, tags=tags)
        event = DagsterEvent(event_type_value="PIPELINE_SUCCESS", job_name="attribution_job")
        with DagsterInstance.ephemeral() as instance:
            ctx = build_run_status_sensor_context("commission_after_attribution", event, instance, run, resources=res)
            return sensor(ctx)

    # a range re-run of October from the UI: October's and November's estimates, not September's
    reqs = requests({"dagster/asset_partition_range_start": "2026-10-01", "dagster/asset_partition_range_end": "2026-10-31"})
    assert [(r.job_name, r.partition_key) for r in reqs] == [("commission_job", "2026-10"), ("commission_job", "2026-11")]
    _bi_in_the_last_run_only(reqs)
    one = requests({"dagster/partition": "2026-11-02"})
    assert [r.partition_key for r in one] == ["2026-11"]
    # `o2p run` runs its own commission steps: no second run of each
    skip = requests({"dagster/partition": "2026-11-02", "o2p/command": "o2p run"})
    assert "o2p run" in skip.skip_message


def test_assets_carry_owners_code_versions_and_checks_the_ui_shows():
    from dagster import AssetKey

    from pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    mart = graph.get(AssetKey(["marts", "fct_commission_entitlements"]))
    assert mart.owners == ["team:data-platform", "team:finance"] and "marts" in mart.tags
    assert graph.get(AssetKey(["staging", "stg_landing__refunds"])).group_name == "staging"
    for key in (["attribution", "clicks_validated"], ["settlement", "promoter_balances"], ["payouts", "payout_batch"]):
        node = graph.get(AssetKey(key))
        assert node.owners and len(node.code_version or "") == 12, (key, node.owners, node.code_version)
    columns = {c.name: c.description for c in mart.metadata["dagster/column_schema"].columns}
    assert columns["entitled_fen"], "column descriptions reach the UI"
    checks = {f"{k.asset_key.to_user_string()}:{k.name}" for k in graph.asset_check_keys}
    assert {"landing/clicks:landing_fresh", "landing/orders:landing_fresh", "landing/refunds:landing_fresh"} <= checks


def test_the_lookback_lineage_follows_the_config_and_a_bad_config_stops_the_location(fresh_load):
    """The UI's lineage of a day's attribution (the days of validated clicks it reads) is the
    config's attribution.lookback_days, not a literal; a config that does not validate stops the
    code location naming the key."""
    ten = fresh_load(LOOKBACK_10)
    assert ten.returncode == 0, ten.stderr[-2000:]
    assert "lookback mapping: -10" in ten.stdout
    bad = fresh_load("attribution:\n  lookback_days: 0\n")
    assert bad.returncode != 0 and "attribution.lookback_days" in bad.stderr, bad.stderr[-2000:]
