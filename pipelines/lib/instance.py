"""The project's one Dagster instance: `$O2P_HOME/dagster` (or `$DAGSTER_HOME` when it is set).

The CLI's runs (`o2p run`, `o2p payouts release`) and the UI (`o2p serve`, `./dev ui`) use the
same instance, so the runs a command made are the runs the UI shows. A new instance folder gets
a `dagster.yaml` with telemetry off (no sign-up modal, no calls home); an existing `dagster.yaml`
is never touched (production configures PostgreSQL storage there).
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path

from o2p.config import Config

DEFAULT_YAML = """\
# The Dagster instance of this o2p home (written by o2p; edit freely, o2p never rewrites it).
# Storage is SQLite under this folder; production points run, event and schedule storage at
# PostgreSQL here (dagster-postgres).
telemetry:
  enabled: false
"""


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
    if not yaml.exists():
        yaml.write_text(DEFAULT_YAML, encoding="utf-8")
    return home, note


def who() -> str:
    """Who runs a command: $O2P_USER, else the operating-system user."""
    return os.environ.get("O2P_USER") or getpass.getuser()


def run_tags(command: str) -> dict[str, str]:
    """Tags on every run the CLI launches: which command, which person, from which host."""
    return {"o2p/command": command, "o2p/user": who(), "o2p/host": os.uname().nodename}
