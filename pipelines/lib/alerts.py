"""Alerts (issue #17): a failed run — a failed gate above all — is said where someone reads it.

`alert_on_failure` is a run-failure sensor, running by default under the daemon (`o2p serve`),
over every run of the instance, the CLI's included. Its message names the job, the partition,
each failed check with its first failing rows (the gate's own description), and each failed
step's innermost error. It is always logged; it is also POSTed as JSON to the webhook whose URL
is in the environment variable `alerts.webhook_url_env`, in the shape `alerts.format` names
(Slack's `{"text"}`, WeCom's and Feishu's group robots). A webhook that does not answer is
logged, never retried in a loop: the alert is in the log either way.
"""

import json
import logging
import os
import urllib.request

from dagster import (
    DagsterEventType,
    DefaultSensorStatus,
    RunFailureSensorContext,
    run_failure_sensor,
)

from pipelines.resources import O2PConfig

log = logging.getLogger("o2p.alerts")
MAX_CHARS = 3500   # chat robots cut long messages (WeCom: 4096 bytes of text)


def describe_failure(instance, run) -> str:
    """The failure of `run` in a few lines: job, partition, failed checks, failed steps."""
    tags = run.tags or {}
    where = tags.get("dagster/partition") or (
        f"{tags['dagster/asset_partition_range_start']}..{tags['dagster/asset_partition_range_end']}"
        if "dagster/asset_partition_range_start" in tags else None)
    head = f"o2p: {run.job_name} failed" + (f" for {where}" if where else "") + f" (run {run.run_id[:8]}"
    head += f", started by `{tags['o2p/command']}` as {tags.get('o2p/user', '?')})" if "o2p/command" in tags else ")"
    lines = [head]
    for rec in instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION):
        data = rec.dagster_event.event_specific_data
        if not data.passed:
            lines.append(f"check {data.asset_key.to_user_string()}:{data.check_name} failed: "
                         f"{(data.description or '').strip()}")
    for rec in instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_FAILURE):
        err = rec.dagster_event.event_specific_data.error
        while err is not None and err.cause is not None:
            err = err.cause
        if err is not None and err.cls_name != "DagsterAssetCheckFailedError":
            first = (err.message or err.cls_name).strip().splitlines()[0]
            lines.append(f"step {rec.dagster_event.step_key} failed: {first}")
    text = "\n".join(lines)
    return text if len(text) <= MAX_CHARS else text[:MAX_CHARS - 1] + "…"


def payload(text: str, fmt: str) -> dict:
    if fmt == "wecom":
        return {"msgtype": "text", "text": {"content": text}}
    if fmt == "feishu":
        return {"msg_type": "text", "content": {"text": text}}
    return {"text": text}


def post(url: str, body: dict, timeout: float) -> None:
    req = urllib.request.Request(url, data=json.dumps(body, ensure_ascii=False).encode("utf-8"),
                                 headers={"Content-Type": "application/json; charset=utf-8"}, method="POST")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        resp.read()


@run_failure_sensor(name="alert_on_failure", default_status=DefaultSensorStatus.RUNNING,
                    description="Logs every failed run with its failed checks and steps, and posts it to "
                                "the webhook in $O2P_ALERT_WEBHOOK (alerts.* in the config).")
def alert_on_failure(context: RunFailureSensorContext, o2p: O2PConfig):
    cfg = o2p.get()
    text = describe_failure(context.instance, context.dagster_run)
    context.log.error(text)
    log.error(text)
    url = os.environ.get(cfg.alerts.webhook_url_env)
    if not url:
        return
    try:
        post(url, payload(text, cfg.alerts.format), cfg.alerts.timeout_seconds)
    except OSError as exc:   # the alert is in the log; a dead webhook must not fail the sensor
        context.log.warning(f"alert webhook ({cfg.alerts.webhook_url_env}) did not take the alert: {exc}")
