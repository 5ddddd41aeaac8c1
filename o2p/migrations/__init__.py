"""The registry's schema, versioned with Alembic (issue #12): every change is a migration under
`versions/`, applied in place on SQLite and PostgreSQL when a registry is opened; a registry made
before Alembic (no `alembic_version` table) is adopted by the baseline, which creates only the
tables it lacks, so released batches are never rewritten.

`HEAD` is the newest revision: opening a registry already at it costs one query, not Alembic."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine

HEAD = "0003"
HERE = Path(__file__).resolve().parent


def current(engine: Engine) -> str | None:
    with engine.connect() as c:
        try:
            return c.execute(text("select version_num from alembic_version")).scalar()
        except Exception:   # noqa: BLE001 - no version table yet: a new or pre-Alembic registry
            return None


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the registry at `engine` to `revision` (default: the newest), in one transaction."""
    if revision == "head" and current(engine) == HEAD:
        return
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)
