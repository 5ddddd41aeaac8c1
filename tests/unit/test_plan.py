"""The order of work (pipelines/lib/plan.py): the same plan for `o2p run` and the daemon."""

from pipelines.lib.plan import Step, commission_months, months_between, next_release, pipeline_plan


def test_commission_months_run_from_the_changed_month_on():
    months = ["2026-09", "2026-10", "2026-11"]
    # entitlements are cumulative snapshots: a change on 10-15 changes October and November
    assert commission_months("2026-10-15", months) == ["2026-10", "2026-11"]
    assert commission_months("2026-11-30", months) == ["2026-11"]
    assert commission_months("2026-12-01", months) == []
    assert commission_months("2026-08-01", months) == months


def test_pipeline_plan_is_reference_then_ranges_then_every_landed_month():
    days = ["2026-09-30", "2026-10-01", "2026-10-02", "2026-10-26", "2026-11-01", "2099-01-01"]
    steps, skipped = pipeline_plan(days, "2026-12-02")
    assert skipped == ["2099-01-01"]
    assert steps == [
        Step("reference_job"),
        Step("attribution_job", partition_range=("2026-09-30", "2026-10-02")),
        Step("attribution_job", partition_range=("2026-10-26", "2026-11-01")),
        # the BI marts (no period) once, in the last month's run
        Step("commission_job", partition="2026-09", bi=False),
        Step("commission_job", partition="2026-10", bi=False),
        Step("commission_job", partition="2026-11", bi=True),
    ]
    assert [str(s) for s in steps[:2]] == ["reference_job", "attribution_job 2026-09-30..2026-10-02"]
    assert pipeline_plan(["2099-01-01"], "2026-12-02") == ([], ["2099-01-01"])


def test_next_release_is_the_earliest_ended_period_not_released():
    assert months_between("2026-11", "2027-02") == ["2026-11", "2026-12", "2027-01", "2027-02"]
    assert next_release("2026-09", [], "2026-11") == ("2026-09", "2026-09 is the earliest ended period not released")
    assert next_release("2026-09", ["2026-09"], "2026-11")[0] == "2026-10"
    assert next_release("2026-09", ["2026-09", "2026-10", "2026-11"], "2026-11") == (
        None, "every ended period up to 2026-11 is released")
    assert next_release("2026-12", [], "2026-11") == (None, "the first period 2026-12 has not ended yet")
    assert next_release(None, [], "2026-11") == (None, "nothing has been captured yet")
