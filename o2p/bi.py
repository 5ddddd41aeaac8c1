"""The BI copy (issue #14): the marts, published to a DuckDB file of their own that analysts'
tools (Superset through duckdb_engine, Metabase, a notebook) hold open, so no reader ever holds
the pipeline's file (DuckDB has one writer, and any other process holding the file blocks it).

Publishing a refresh:
  1. a new file is written beside the copy under a name of this process
     (`.o2p_bi.duckdb.<pid>.tmp`), any leftover of a crashed refresh of this pid removed first;
  2. the warehouse is attached read-only and every table of `layout.BI_SCHEMAS` copied whole;
  3. the new file is checkpointed and closed (no WAL left), fsynced;
  4. `os.replace` puts it in the copy's place and the folder is fsynced.
A reader connected before step 4 keeps reading the old file (its open descriptor keeps the old
inode) until it reconnects, then reads the new one: the old state or the new, never half.
A crash before step 4 leaves the old copy in place and a temporary file the next refresh of the
same pid replaces (others are removed when older than an hour).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from o2p import layout
from o2p.fsio import fsync_dir
from o2p.quoting import literal

STALE_TMP_SECONDS = 3600   # a temporary file this old belongs to a refresh that died


def _tmp_name(target: Path) -> Path:
    return target.with_name(f".{target.name}.{os.getpid()}.tmp")


def _remove_stale(target: Path) -> None:
    now = time.time()
    for p in target.parent.glob(f".{target.name}.*.tmp*"):
        try:
            if now - p.stat().st_mtime > STALE_TMP_SECONDS:
                p.unlink()
        except FileNotFoundError:
            pass


def publish_duckdb(warehouse_db: Path, target: Path, schemas: tuple[str, ...] = layout.BI_SCHEMAS) -> dict[str, int]:
    """Copy every table of `schemas` from the warehouse into `target`, swapped in atomically.
    Returns the rows per table published."""
    import duckdb

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(target)
    tmp = _tmp_name(target)
    for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
        leftover.unlink(missing_ok=True)
    counts: dict[str, int] = {}
    try:
        with duckdb.connect(str(tmp)) as con:
            con.execute(f"attach {literal(warehouse_db)} as warehouse (read_only)")
            tables = con.execute(
                "select schema_name, table_name from duckdb_tables() where database_name = 'warehouse' "
                f"and schema_name in ({', '.join('?' for _ in schemas)}) order by all", list(schemas)).fetchall()
            for schema, table in tables:
                con.execute(f'create schema if not exists "{schema}"')
                con.execute(f'create table "{schema}"."{table}" as select * from warehouse."{schema}"."{table}"')
                counts[f"{schema}.{table}"] = con.execute(f'select count(*) from "{schema}"."{table}"').fetchone()[0]
            con.execute("detach warehouse")
            con.execute("checkpoint")
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        fsync_dir(target.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return counts
