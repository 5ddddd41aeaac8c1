"""Running a job of the definitions in this process, for the `o2p` command: the project's
Dagster instance (the one `o2p serve` shows, so CLI runs appear in the UI and take the same
warehouse slot), this config, the chatter of dbt and GX in a log file, and the result turned
into the CLI's errors (rulebook §9: exit 2 bad input, 3 a gate failed, 1 anything else)."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time

from o2p.config import Config
from o2p.errors import GateBroken, GateFailed, InputError, O2PError, explain_os_error

# A step's error reaches us serialised (Dagster keeps the class name, not the class): these are
# the errors of ours that mean more than "the run failed", by the name they are serialised under
_OURS = {cls.__name__: cls for cls in (InputError, GateFailed, GateBroken)}


_instances: dict[str, object] = {}   # one per instance folder and process: its storages are set up once


def instance(cfg: Config):
    """The project's instance ($O2P_HOME/dagster, or $DAGSTER_HOME): the one `o2p serve` shows.
    Runs of a command whose process died are marked failed and their warehouse slot freed."""
    from dagster import DagsterInstance

    from pipelines.lib.instance import dagster_home, reap_dead_cli_runs

    home, note = dagster_home(cfg)
    if note:
        print(f"o2p: {note}", file=sys.stderr, flush=True)
    os.environ["DAGSTER_HOME"] = str(home)
    st = home.stat()
    key = f"{home}:{st.st_dev}:{st.st_ino}"   # a folder removed and made again is another instance
    inst = _instances.get(key)
    if inst is None:
        inst = _instances[key] = DagsterInstance.get()
    for run_id in reap_dead_cli_runs(inst):
        print(f"o2p: run {run_id[:8]} of a command whose process is gone was marked failed and its "
              "warehouse slot freed", file=sys.stderr, flush=True)
    return inst


@contextlib.contextmanager
def run_environment(cfg: Config):
    """O2P_HOME, O2P_CONFIG and DAGSTER_HOME for one in-process run (the definitions, dbt and
    Dagster read them), put back as they were afterwards: a command or a test that runs jobs for
    two homes in one process must not leave the first home's settings to the second."""
    keys = ("O2P_HOME", "O2P_CONFIG", "DAGSTER_HOME")
    before = {k: os.environ.get(k) for k in keys}
    os.environ["O2P_HOME"] = str(cfg.home_path)
    if cfg.source != "<defaults>":
        os.environ["O2P_CONFIG"] = cfg.source
    else:
        os.environ.pop("O2P_CONFIG", None)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def execute(cfg: Config, job_name: str, *, partition: str | None = None,
            partition_range: tuple[str, str] | None = None, invocation: str = "o2p", bi: bool = True):
    """Run `job_name` for one partition or a range; raise the CLI's error when it did not succeed.
    `invocation` (the command line) is in the run's tags. `bi=False` (commission_job only): leave
    the BI marts and copy to a later run of the plan (pipelines/lib/plan.py, Step.bi)."""
    with run_environment(cfg):
        return _execute_here(cfg, job_name, partition=partition, partition_range=partition_range,
                             invocation=invocation, bi=bi)


def _execute_here(cfg: Config, job_name: str, *, partition: str | None, partition_range: tuple[str, str] | None,
                  invocation: str, bi: bool):
    from pipelines.lib.dbt_manifest import prepare

    prepare()   # the dbt manifest the definitions load, parsed again if a model changed
    from pipelines.definitions import defs
    from pipelines.lib.instance import run_tags
    from pipelines.resources import O2PConfig

    job = defs.resolve_job_def(job_name)
    if not bi:   # subset first: a selection passed with the resources below would clash with them
        from pipelines.jobs import without_bi

        keys, checks = without_bi(job_name)
        job = job.get_subset(asset_selection=frozenset(keys), asset_check_selection=frozenset(checks))
    if job_name == "release_job" and partition:
        job = _reusing_commission(cfg, job, partition)
    tags = run_tags(invocation)
    if partition_range:
        tags |= {"dagster/asset_partition_range_start": partition_range[0],
                 "dagster/asset_partition_range_end": partition_range[1]}
    # dbt's event stream and GX write to stdout; keep the terminal for our own progress lines and
    # the chatter in a log file per job run (its path is in any error message)
    log_dir = cfg.home_path / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{job_name}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.log"
    inst = instance(cfg)
    # Dagster's own error events (with their stack traces) go there too: the terminal gets one
    # `o2p:` line that names the cause (see o2p.cli.main)
    with open(log_path, "a", encoding="utf-8") as fh, contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
        result = job.execute_in_process(
            instance=inst, partition_key=partition, tags=tags, raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            # this config, not the one the environment named when the definitions were imported
            resources={"o2p": O2PConfig(config_path=None if cfg.source == "<defaults>" else cfg.source,
                                        home=str(cfg.home_path))},
        )
    try:
        raise_for(result, job_name)
    except O2PError as exc:
        exc.args = (f"{exc.args[0] if exc.args else exc}\n  (full output of the run: {log_path})", *exc.args[1:])
        raise
    return result


def _reusing_commission(cfg: Config, job, period: str):
    """The release without its dbt build when the tables a run before it built and gated are
    still current (nothing they are built from changed since: pipelines/lib/builds.py); the
    settlement step checks that again when it runs, and takes that build's gate as this run's."""
    from pipelines.assets.commission.assets import dbt_vars
    from pipelines.jobs import reusing_commission
    from pipelines.lib import builds

    reuse, _ = builds.current(cfg, period[:7], dbt_vars(cfg, period[:7]))
    if reuse is None:
        return job
    print(f"o2p: {period[:7]}: the commission tables of run {reuse.run_id[:8]} are reused (nothing they are built "
          "from has changed since; their dbt tests and commission gate passed there)", file=sys.stderr, flush=True)
    keys, checks = reusing_commission(job.name)
    return job.get_subset(asset_selection=frozenset(keys), asset_check_selection=frozenset(checks))


def raise_for(result, job_name: str) -> None:
    """The CLI's error for a run that did not succeed: ours as raised in the step (bad input, a
    gate that failed or could not run), a failed asset check, else the root cause in one line."""
    evaluations = [e.asset_check_evaluation_data for e in result.all_events
                   if e.event_type_value == "ASSET_CHECK_EVALUATION" and not e.asset_check_evaluation_data.passed]
    # a check whose suite could not run (an `error`, no failures) is an internal error, not a finding
    broken = [c for c in evaluations if _check_broken(c)]
    failed_checks = [c for c in evaluations if not _check_broken(c)]
    errors = [e.step_failure_data.error for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    for err in errors:
        for c in _chain(err):
            cls = _OURS.get(c.cls_name)
            if cls is InputError:
                raise InputError(c.message.strip())
            if cls is GateFailed:
                raise GateFailed(c.message.strip() + _describe_checks(failed_checks))
            if cls is GateBroken:
                raise GateBroken(c.message.strip() + _describe_checks(broken))
    if failed_checks:
        raise GateFailed(f"{job_name}: quality gate failed, nothing downstream ran:" + _describe_checks(failed_checks))
    if broken:
        raise GateBroken(f"{job_name}: a quality gate could not run (an internal error, not a finding about "
                         "the data), nothing downstream ran:" + _describe_checks(broken))
    if errors:
        raise O2PError(f"{job_name} failed: " + "; ".join(_root_cause(e) for e in errors),
                       "".join(_stack(e) for e in errors))
    if not result.success:
        raise O2PError(f"{job_name} did not succeed")


def _check_broken(evaluation) -> bool:
    from expectations.runner import is_broken

    md = evaluation.metadata or {}
    value = lambda key: getattr(md.get(key), "value", md.get(key))   # noqa: E731 - MetadataValue or raw
    return is_broken({"success": False, "error": value("error"), "failures": value("failures")})


def _chain(err) -> list:
    chain = [err]
    while chain[-1].cause is not None:
        chain.append(chain[-1].cause)
    return chain


def _root_cause(err) -> str:
    """The innermost error of a step failure, in one line: what the operator has to act on (the
    outer ones are Dagster's wrappers); an OSError gets the same sentence as anywhere else."""
    root = _chain(err)[-1]
    msg = root.message.strip()
    m = re.match(r"^\w*Error: \[Errno (\d+)\] [^:]*(?:: '(.*)')?$", msg.splitlines()[0] if msg else "")
    if m:
        text = explain_os_error(OSError(int(m.group(1)), "", m.group(2)))
        if text:
            return text
    return msg.splitlines()[0] if msg else root.cls_name


def _stack(err) -> str:
    return "".join(f"{c.cls_name}: {c.message}{''.join(c.stack)}\n" for c in _chain(err))


def _describe_checks(checks) -> str:
    return "".join(f"\n  check {c.asset_key.to_user_string()}:{c.check_name}: {c.description or ''}" for c in checks)
