"""The registry's schema, versioned with Alembic (issue #12): every change is a migration under
`versions/`, applied in place on SQLite and PostgreSQL when a registry is opened; a registry made
before Alembic (no `alembic_version` table) is adopted by the baseline, which creates only the
tables it lacks, so released batches are never rewritten.

`HEAD` is the newest revision: opening a registry already at it costs one query, not Alembic."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine

HERE = Path(__file__).resolve().parent


def current(engine: Engine) -> str | None:
    with engine.connect() as c:
        try:
            return c.execute(text("select version_num from alembic_version")).scalar()
        except Exception:   # noqa: BLE001 - no version table yet: a new or pre-Alembic registry
            return None


def known_revisions() -> set[str]:
    """The revisions this code has (versions/NNNN_*.py)."""
    return {p.name.split("_", 1)[0] for p in (HERE / "versions").glob("[0-9]*_*.py")}


HEAD = max(known_revisions())


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the registry at `engine` to `revision` (default: the newest), in one transaction:
    a migration that fails leaves the registry as it was. SQLite's driver commits DDL on its
    own, so there the upgrade runs on a connection whose transaction we open ourselves, with
    BEGIN IMMEDIATE: a second process opening the registry meanwhile waits, then finds it done."""
    at = current(engine)
    if revision == "head" and at == HEAD:
        return
    if at is not None and at not in known_revisions():
        from o2p.errors import O2PError

        raise O2PError(f"the registry {engine.url.render_as_string(hide_password=True)} is at schema revision {at}, "
                       f"which this o2p does not know (it knows up to {HEAD}): a newer o2p upgraded it. Run that "
                       "version; this one changed nothing (it cannot read a newer schema safely)")
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    target = _sqlite_transactional(engine) if engine.dialect.name == "sqlite" else engine
    try:
        with target.begin() as connection:
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, revision)
    finally:
        if target is not engine:
            target.dispose()


def _sqlite_transactional(engine: Engine) -> Engine:
    """The SQLAlchemy recipe for SQLite DDL in a transaction: no driver-managed transactions,
    our own BEGIN IMMEDIATE (the write lock at once, so that concurrent upgrades queue)."""
    from sqlalchemy import create_engine, event

    eng = create_engine(engine.url, connect_args={"timeout": 60})

    @event.listens_for(eng, "connect")
    def _no_driver_transactions(dbapi_connection, _record):
        dbapi_connection.isolation_level = None

    @event.listens_for(eng, "begin")
    def _begin_immediate(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return eng
