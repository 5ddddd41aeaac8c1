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
same pid replaces (others are removed when older than an hour). Views of the marts schema (the
estimated-vs-settled mart, which reads the registry's releases) are copied as tables.

Before the copy, `sync_releases` brings the warehouse's `settlement.ledger_mirror` and
`settlement.released_balances` in step with the registry (the release that just ran included),
so the marts that read them (dbt source `settlement`) answer as of the last release.

The PostgreSQL copy (`publish_postgres`, when `bi.postgres_url` is set) reads the DuckDB copy
just published and writes every table in ONE transaction: per table DELETE then COPY, committed
together. DELETE takes only a row lock mode, so a reader's open transaction (even REPEATABLE
READ, holding its tables) never blocks it, and MVCC shows each reader the old rows or the new,
never half. Only a table that is new or whose columns changed is (re)created, which needs an
exclusive lock: `lock_timeout` bounds that wait, and a refresh that cannot get it fails whole
(the old tables stay) rather than wait for a reader.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from o2p import layout
from o2p.fsio import fsync_dir
from o2p.quoting import literal

STALE_TMP_SECONDS = 3600   # a temporary file this old belongs to a refresh that died
PG_LOCK_TIMEOUT = "10s"    # the longest a PostgreSQL refresh waits to (re)create a table a reader holds

# the registry's balances of released periods, for dbt's source settlement.released_balances
_RELEASED_BALANCES_DDL = f"""create table if not exists {layout.RELEASED_BALANCES} (
    period varchar not null, promoter_id varchar not null, carried_in_fen bigint not null,
    returned_fen bigint not null, movement_fen bigint not null, balance_fen bigint not null,
    gross_fen bigint not null, tax_fen bigint not null, net_fen bigint not null,
    carried_out_fen bigint not null, carry_reason varchar, primary key (period, promoter_id))"""
_BALANCE_COLUMNS = ("period", "promoter_id", "carried_in_fen", "returned_fen", "movement_fen", "balance_fen",
                    "gross_fen", "tax_fen", "net_fen", "carried_out_fen", "carry_reason")


def ensure_settlement_sources(con) -> None:
    """The tables of dbt's `settlement` source, empty where they do not exist yet (a new home:
    the marts' views over them are created before any release)."""
    from o2p import ledger_mirror

    ledger_mirror.ensure(con)
    con.execute(_RELEASED_BALANCES_DDL)


def sync_releases(con, registry) -> dict:
    """Bring the warehouse's copies of the registry's releases in step: the ledger mirror of every
    released period (`o2p.ledger_mirror.sync`, which checks itself against the registry's totals)
    and the balances of every released period (replaced whole, in one transaction)."""
    import pyarrow as pa

    from o2p import ledger_mirror

    ensure_settlement_sources(con)
    mirror = ledger_mirror.sync(con, registry, before="9999-12")
    rows = registry.released_balances()
    table = pa.table({c: pa.array([r[c] for r in rows], pa.string() if c in ("period", "promoter_id", "carry_reason")
                                  else pa.int64()) for c in _BALANCE_COLUMNS})
    con.register("_released_balances", table)
    con.execute("begin")
    try:
        con.execute(f"delete from {layout.RELEASED_BALANCES}")
        con.execute(f"insert into {layout.RELEASED_BALANCES} by name select * from _released_balances")
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    finally:
        con.unregister("_released_balances")
    return {"ledger_periods_reloaded": mirror["reloaded"], "released_balances": len(rows)}


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
            # attached under its own catalog name (the file's stem, "o2p"): dbt's views name it
            db = Path(warehouse_db).stem
            con.execute(f"attach {literal(warehouse_db)} as {_ident(db)} (read_only)")
            marks = ", ".join("?" for _ in schemas)
            tables = con.execute(   # views (over the settlement tables) are copied as tables
                "select schema_name, table_name from duckdb_tables() where database_name = ? "
                f"and schema_name in ({marks}) union all "
                "select schema_name, view_name from duckdb_views() where database_name = ? "
                f"and schema_name in ({marks}) and not internal order by all", [db, *schemas, db, *schemas]).fetchall()
            for schema, table in tables:
                con.execute(f'create schema if not exists "{schema}"')
                con.execute(f'create table "{schema}"."{table}" as select * from {_ident(db)}."{schema}"."{table}"')
                counts[f"{schema}.{table}"] = con.execute(f'select count(*) from "{schema}"."{table}"').fetchone()[0]
            con.execute(f"detach {_ident(db)}")
            con.execute("checkpoint")
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        fsync_dir(target.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return counts


# DuckDB type → PostgreSQL type, for the marts' column types (anything else: the refresh fails, naming it)
_PG_TYPES = {"VARCHAR": "text", "BIGINT": "bigint", "INTEGER": "integer", "BOOLEAN": "boolean", "DATE": "date",
             "TIMESTAMP WITH TIME ZONE": "timestamptz", "TIMESTAMP": "timestamp", "DOUBLE": "double precision",
             "HUGEINT": "numeric(38)", "SMALLINT": "smallint"}


def _pg_url(url: str) -> str:
    """SQLAlchemy's URL (postgresql+psycopg://…) as the libpq URI psycopg connects with."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def publish_postgres(copy: Path, url: str, schemas: tuple[str, ...] = layout.BI_SCHEMAS,
                     lock_timeout: str = PG_LOCK_TIMEOUT) -> dict[str, int]:
    """Write every table of `schemas` of the DuckDB BI copy `copy` to PostgreSQL at `url`, all in
    one transaction (see the module's docstring). Tables PostgreSQL has in those schemas that the
    copy no longer has are dropped. Returns the rows per table written."""
    import duckdb
    import psycopg

    counts: dict[str, int] = {}
    # an in-memory database attaching the copy, not duckdb.connect(copy): in a process that already
    # holds the copy open (a reader), DuckDB refuses a second connection with another configuration
    with duckdb.connect() as duck, psycopg.connect(_pg_url(url)) as pg, \
            tempfile.TemporaryDirectory(prefix="o2p-bi-pg-") as tmp:
        duck.execute(f"attach {literal(copy)} as bi (read_only)")
        marks = ", ".join("?" for _ in schemas)
        tables = duck.execute("select schema_name, table_name from duckdb_tables() where database_name = 'bi' "
                              f"and schema_name in ({marks}) order by all", list(schemas)).fetchall()
        with pg.transaction(), pg.cursor() as cur:
            cur.execute(f"set local lock_timeout = '{lock_timeout}'")
            for schema in schemas:
                cur.execute(f"create schema if not exists {_ident(schema)}")
            cur.execute("select table_schema, table_name from information_schema.tables "
                        "where table_schema = any(%s) and table_type = 'BASE TABLE'", [list(schemas)])
            for schema, table in sorted(set(cur.fetchall()) - set(tables)):
                cur.execute(f"drop table {_ident(schema)}.{_ident(table)}")
            for schema, table in tables:
                cols = duck.execute("select column_name, data_type from duckdb_columns() where database_name = 'bi' "
                                    "and schema_name = ? and table_name = ? order by column_index",
                                    [schema, table]).fetchall()
                unknown = [f"{c} {t}" for c, t in cols if t not in _PG_TYPES]
                if unknown:
                    raise ValueError(f"{schema}.{table}: no PostgreSQL type for column(s) {', '.join(unknown)}")
                want = [(c, _PG_TYPES[t]) for c, t in cols]
                name = f"{_ident(schema)}.{_ident(table)}"
                cur.execute("select column_name, format_type(a.atttypid, a.atttypmod) from information_schema.columns c "
                            "join pg_attribute a on a.attrelid = (quote_ident(c.table_schema) || '.' || "
                            "quote_ident(c.table_name))::regclass and a.attname = c.column_name "
                            "where c.table_schema = %s and c.table_name = %s order by c.ordinal_position",
                            [schema, table])
                have = [(c, _pg_canonical(t)) for c, t in cur.fetchall()]
                if have != [(c, _pg_canonical(t)) for c, t in want]:
                    if have:
                        cur.execute(f"drop table {name}")
                    cur.execute(f"create table {name} ({', '.join(f'{_ident(c)} {t}' for c, t in want)})")
                else:
                    cur.execute(f"delete from {name}")
                # DuckDB writes the rows as CSV (NULL unquoted-empty, '' quoted), PostgreSQL's COPY
                # reads them: no Python per row (write_row took ~75 s per 10^6 rows here)
                csv = Path(tmp) / f"{schema}.{table}.csv"
                duck.execute(f'copy (select * from bi."{schema}"."{table}") to {literal(csv)} (format csv, header false)')
                with cur.copy(f"copy {name} ({', '.join(_ident(c) for c, _ in want)}) from stdin (format csv)") as out, \
                        open(csv, "rb") as fh:
                    while chunk := fh.read(1 << 20):
                        out.write(chunk)
                csv.unlink()
                n = cur.rowcount
                counts[f"{schema}.{table}"] = n
    return counts


def _pg_canonical(t: str) -> str:
    """format_type's spelling of the types _PG_TYPES names."""
    return {"timestamptz": "timestamp with time zone", "timestamp": "timestamp without time zone",
            "numeric(38)": "numeric(38,0)"}.get(t, t)
