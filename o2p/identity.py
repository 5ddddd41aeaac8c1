"""Who runs a command that changes money (rulebook §10): `--as NAME`, else $O2P_USER, else the
operating-system user. The CLI's `--as` sets $O2P_USER for the command (and the Dagster runs it
starts, whose `o2p/user` tag the release records)."""

from __future__ import annotations

import getpass
import os


def who() -> str:
    name = (os.environ.get("O2P_USER") or "").strip()
    if name:
        return name
    try:
        return getpass.getuser()
    except (KeyError, OSError):   # no passwd entry (a container with a bare uid)
        return f"uid {os.getuid()}"
