"""DuckDB helpers. One writer at a time: every asset that writes the file is in pool 'duckdb'."""

from __future__ import annotations

import duckdb

from o2p.config import Config

POOL = "duckdb"


def connect(cfg: Config, read_only: bool = False):
    cfg.warehouse_path.mkdir(parents=True, exist_ok=True)
    return duckdb.connect(str(cfg.duckdb_path), read_only=read_only)


def replace_period(con, table: str, period: str, df) -> None:
    """Replace one period's rows of `table` (created from df's columns on first use)."""
    schema, _, _ = table.partition(".")
    con.execute(f"create schema if not exists {schema}")
    con.register("_incoming", df)
    con.execute(f"create table if not exists {table} as select * from _incoming where false")
    con.execute("begin")
    con.execute(f"delete from {table} where period = ?", [period])
    con.execute(f"insert into {table} by name select * from _incoming")
    con.execute("commit")
    con.unregister("_incoming")
