"""What the daemon of `o2p serve` does by itself (issue #17). The order of work is
`pipelines/lib/plan.py`; here are the sensors and the schedule that follow it. Every one is
running by default; a switch under `automation:` in the config stops it, and each tick it skips
says why (nothing silently does nothing).
"""

import time

from dagster import (
    AssetKey,
    AssetMaterialization,
    DagsterRunStatus,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunRequest,
    RunStatusSensorContext,
    ScheduleEvaluationContext,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    run_status_sensor,
    schedule,
    sensor,
)

from o2p import layout
from o2p.layout import TABLES, landed_days
from o2p.periods import first_period
from o2p.registry import Registry
from o2p.timeutil import previous_period, shanghai_date
from pipelines.jobs import attribution_job, commission_job, reference_job, release_job, without_bi
from pipelines.lib.partitions import START, TIMEZONE, affected_range, daily
from pipelines.lib.plan import commission_months, landed_months, newer_files, next_release
from pipelines.resources import O2PConfig

AUTOMATION_TAG = "o2p/automation"
COMMISSION_FROM_TAG = "o2p/commission_from"   # the first month an attribution run's success recomputes
REFERENCE_FILES = ("promoters.csv", "products.csv", "commission_rules.csv")


def _off(switch: str, cfg) -> SkipReason:
    return SkipReason(f"automation.{switch} is false in {cfg.source}: switched off")


@sensor(
    name="landing_sensor",
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Newly landed clicks and orders → one attribution run over every day they make stale "
                "(late clicks re-run the days whose orders they can win); new refunds → commission of their "
                "month and every later landed one. Records each landed day as the landing assets' "
                "partition status. Switch: automation.attribute_landed_days.",
    jobs=[attribution_job, commission_job],
)
def landing_sensor(context: SensorEvaluationContext, o2p: O2PConfig):
    cfg = o2p.get()
    if not cfg.automation.attribute_landed_days:
        return _off("attribute_landed_days", cfg)
    cursor = int(context.cursor or 0)
    new, newest = newer_files(cfg.landing_path, TABLES, cursor)
    last_key = daily.get_last_partition_key()
    landed = [AssetMaterialization(AssetKey(["landing", table]), partition=day,
                                   metadata={"path": str(layout.event_date_dir(layout.landing_table(cfg.landing_path, table), day)),
                                             "files": len(list(layout.event_date_dir(layout.landing_table(cfg.landing_path, table), day).glob("*.parquet")))})
              for table, days in new.items() for day in sorted(days) if START <= day <= last_key]
    if newest > cursor:
        context.update_cursor(str(newest))
    rng = affected_range({d for d in new["clicks"] if d <= last_key}, {d for d in new["orders"] if d <= last_key},
                         cfg.attribution.lookback_days, cfg.attribution.model, last_key)
    refunds = sorted(d for d in new["refunds"] if START <= d <= last_key)
    first_month = min([m for m in ([rng[0][:7]] if rng else []) + ([refunds[0][:7]] if refunds else [])], default=None)
    if rng is not None:
        start, end = rng
        return SensorResult(asset_events=landed, run_requests=[RunRequest(
            run_key=f"attribution {start}..{end} @{newest}", job_name=attribution_job.name,
            tags={"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end,
                  AUTOMATION_TAG: "landing_sensor", COMMISSION_FROM_TAG: first_month})])
    if first_month is not None and cfg.automation.commission_estimates:
        months = commission_months(first_month, landed_months(landed_days(cfg.landing_path)))
        return SensorResult(asset_events=landed, run_requests=[
            RunRequest(run_key=f"commission {m} @{newest}", job_name=commission_job.name, partition_key=m,
                       tags={AUTOMATION_TAG: "landing_sensor"}, **_bi_last(m, months)) for m in months])
    return SensorResult(asset_events=landed, skip_reason=None if landed else "no new landed files")


@run_status_sensor(
    name="commission_after_attribution",
    run_status=DagsterRunStatus.SUCCESS,
    monitored_jobs=[attribution_job],
    request_jobs=[commission_job],
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=15,
    description="After an attribution run succeeds (sensor, UI or CLI): commission of every landed month "
                "from the run's first day on — open months as estimated figures. "
                "Switch: automation.commission_estimates.",
)
def commission_after_attribution(context: RunStatusSensorContext, o2p: O2PConfig):
    cfg = o2p.get()
    if not cfg.automation.commission_estimates:
        return _off("commission_estimates", cfg)
    run = context.dagster_run
    if run.tags.get("o2p/command"):
        return SkipReason(f"run {run.run_id[:8]} was started by `{run.tags['o2p/command']}`, which runs commission itself")
    first = run.tags.get(COMMISSION_FROM_TAG) or run.tags.get("dagster/asset_partition_range_start") \
        or run.tags.get("dagster/partition")
    if not first:
        return SkipReason(f"run {run.run_id[:8]} names no partition")
    months = commission_months(first, landed_months(landed_days(cfg.landing_path)))
    return [RunRequest(run_key=f"commission {m} after {run.run_id}", job_name=commission_job.name, partition_key=m,
                       tags={AUTOMATION_TAG: "commission_after_attribution", "o2p/after_run": run.run_id},
                       **_bi_last(m, months))
            for m in months]


def _bi_last(month: str, months: list[str]) -> dict:
    """The BI marts and copy are built by the last month's run only (they hold no period), as
    `o2p run` does (pipelines/lib/plan.py, Step.bi); the runs are queued in this order."""
    if month == months[-1]:
        return {}
    keys, checks = without_bi(commission_job.name)
    return {"asset_selection": keys, "asset_check_keys": checks}


@sensor(
    name="reference_sensor",
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
    description="A reference CSV changed (or was never typed) → reference_job, which validates it (file, "
                "row, field) and types it for dbt. Switch: automation.reference_data.",
    jobs=[reference_job],
)
def reference_sensor(context: SensorEvaluationContext, o2p: O2PConfig):
    cfg = o2p.get()
    if not cfg.automation.reference_data:
        return _off("reference_data", cfg)
    stamps = [(cfg.reference_path / n).stat().st_mtime_ns for n in REFERENCE_FILES
              if (cfg.reference_path / n).is_file()]
    typed = all(layout.reference_file(cfg.warehouse_path, n.removesuffix(".csv")).is_file() for n in REFERENCE_FILES)
    newest = max(stamps, default=0)
    if typed and newest <= int(context.cursor or 0):
        return SkipReason(f"the reference CSVs under {cfg.reference_path} have not changed")
    context.update_cursor(str(newest))
    return RunRequest(run_key=f"reference @{newest}", job_name=reference_job.name,
                      tags={AUTOMATION_TAG: "reference_sensor"})


def last_ended_period(now_s: float) -> str:
    return previous_period(shanghai_date(int(now_s * 1_000_000)).isoformat()[:7])


@schedule(
    name="release_schedule",
    cron_schedule="0 6 1 * *",
    execution_timezone=TIMEZONE,
    job=release_job,
    default_status=DefaultScheduleStatus.RUNNING,
    description="On the 1st at 06:00 Asia/Shanghai: releases the earliest ended period not yet released "
                "(periods go in order), gated by every check; after a success the next one follows. "
                "Switch: automation.monthly_release.",
)
def release_schedule(context: ScheduleEvaluationContext, o2p: O2PConfig):
    cfg = o2p.get()
    if not cfg.automation.monthly_release:
        return _off("monthly_release", cfg)
    when = context.scheduled_execution_time.timestamp()
    return _release_request(cfg, when, "release_schedule", f"@{int(when)}")


def _release_request(cfg, now_s: float, by: str, key: str):
    registry = Registry(cfg.registry)
    period, why = next_release(first_period(cfg, registry), [b["period"] for b in registry.released()],
                               last_ended_period(now_s))
    if period is None:
        return SkipReason(why)
    return RunRequest(run_key=f"release {period} {key}", partition_key=period, job_name=release_job.name,
                      tags={AUTOMATION_TAG: by})


@run_status_sensor(
    name="release_backlog",
    run_status=DagsterRunStatus.SUCCESS,
    monitored_jobs=[release_job],
    request_jobs=[release_job],
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=15,
    description="After the release schedule's release succeeds, the next ended period not released, if "
                "any (a backlog is released in order, one run each). Switch: automation.monthly_release.",
)
def release_backlog(context: RunStatusSensorContext, o2p: O2PConfig):
    cfg = o2p.get()
    if not cfg.automation.monthly_release:
        return _off("monthly_release", cfg)
    if not context.dagster_run.tags.get(AUTOMATION_TAG):
        return SkipReason("that release was started by hand; the schedule releases backlogs it started itself")
    return _release_request(cfg, time.time(), "release_backlog", f"after {context.dagster_run.run_id}")


SENSORS = [landing_sensor, commission_after_attribution, reference_sensor, release_backlog]
SCHEDULES = [release_schedule]
