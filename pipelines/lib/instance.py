"""The project's one Dagster instance: `$O2P_HOME/dagster` (or `$DAGSTER_HOME` when it is set).

The CLI's runs (`o2p run`, `o2p payouts release`) and the UI (`o2p serve`, `./dev ui`) use the
same instance, so the runs a command made are the runs the UI shows. A new instance folder gets
a `dagster.yaml` with telemetry off (no sign-up modal, no calls home); an existing `dagster.yaml`
is never touched (production configures PostgreSQL storage there).
"""

from __future__ import annotations

import os
from pathlib import Path

from o2p.config import Config
from o2p.identity import who

DEFAULT_YAML = """\
# The Dagster instance of this o2p home (written by o2p; edit freely, o2p never rewrites it).
# Storage is SQLite under this folder; production points run, event and schedule storage at
# PostgreSQL here (dagster-postgres, see deploy/dagster.yaml).
telemetry:
  enabled: false
nux:
  enabled: false   # no "Join the Dagster community" sign-up modal
# A run whose process died is marked failed (and its pool slot freed) by the daemon
run_monitoring:
  enabled: true
# ... and retried at most twice when its process was lost; a failed step (a gate) is not retried
run_retries:
  enabled: true
  max_retries: 2
  retry_on_asset_or_op_failure: false
# One writer at a time, whoever started the run (daemon, UI or `o2p run`): every asset that
# writes the warehouse is in the pool `warehouse`; the queue starts one run at a time.
concurrency:
  pools:
    default_limit: 1
  runs:
    max_concurrent_runs: 1
"""
# What o2p wrote before the pools: replaced by DEFAULT_YAML (a file anyone edited is kept)
_OLD_DEFAULTS = ("""\
# The Dagster instance of this o2p home (written by o2p; edit freely, o2p never rewrites it).
# Storage is SQLite under this folder; production points run, event and schedule storage at
# PostgreSQL here (dagster-postgres).
telemetry:
  enabled: false
""",)


def dagster_home(cfg: Config) -> tuple[Path, str | None]:
    """The instance folder, made ready (created with a dagster.yaml if missing), and a note for
    the operator when something was created where they pointed DAGSTER_HOME."""
    explicit = os.environ.get("DAGSTER_HOME")
    home = Path(explicit).resolve() if explicit else cfg.home_path / "dagster"
    note = None
    if not home.is_dir():
        home.mkdir(parents=True, exist_ok=True)
        if explicit:
            note = f"DAGSTER_HOME {home} did not exist: created it, with telemetry off"
    yaml = home / "dagster.yaml"
    if not yaml.exists() or yaml.read_text(encoding="utf-8") in _OLD_DEFAULTS:
        yaml.write_text(DEFAULT_YAML, encoding="utf-8")
    return home, note


def run_tags(command: str) -> dict[str, str]:
    """Tags on every run the CLI launches: which command, which person, from which host and
    process (so that a run whose process died can be told from one still running)."""
    return {"o2p/command": command, "o2p/user": who(), "o2p/host": os.uname().nodename, "o2p/pid": str(os.getpid())}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_dead_cli_runs(instance) -> list[str]:
    """Runs the CLI started on this host whose process is gone (killed, power cut) stay STARTED
    for ever and keep their `warehouse` pool slot, so every later run would wait for it: mark
    them failed and free their slots. Runs of the daemon are the daemon's run monitoring's."""
    from dagster import DagsterRunStatus, RunsFilter

    host = os.uname().nodename
    reaped = []
    runs = instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.STARTED, DagsterRunStatus.STARTING],
                                        tags={"o2p/host": host}))
    for run in runs:
        pid = run.tags.get("o2p/pid")
        if pid and pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            instance.report_run_failed(run, f"its process {pid} on {host} is gone (found by a later o2p command)")
            if instance.event_log_storage.supports_global_concurrency_limits:
                instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
            reaped.append(run.run_id)
    return reaped
