"""DuckDB helpers. One writer at a time: every asset that writes the warehouse (the DuckDB file,
or Parquet that Spark and dbt read) is in the pool 'warehouse', limited to one slot in the
instance's dagster.yaml, for runs of the daemon, the UI and the CLI alike."""

from __future__ import annotations

import duckdb

from o2p import layout
from o2p.config import Config

POOL = "warehouse"


def connect(cfg: Config, read_only: bool = False):
    cfg.warehouse_path.mkdir(parents=True, exist_ok=True)
    return duckdb.connect(str(cfg.duckdb_path), read_only=read_only)


TABLES = {
    layout.PROMOTER_BALANCES: """(
        period varchar not null, promoter_id varchar not null, carried_in_fen bigint not null,
        movement_fen bigint not null, balance_fen bigint not null, gross_fen bigint not null,
        tax_fen bigint not null, net_fen bigint not null, carried_out_fen bigint not null,
        carry_reason varchar, returned_fen bigint not null default 0, primary key (period, promoter_id))""",
    layout.STATEMENT_LINES: """(
        period varchar not null, promoter_id varchar not null, order_id varchar not null,
        line_id varchar not null, role varchar not null, click_event_id varchar,
        attribution_reason varchar, rate_e4 bigint not null, net_fen bigint not null,
        entitled_fen bigint not null, previously_booked_fen bigint not null,
        movement_fen bigint not null, primary key (period, promoter_id, order_id, line_id, role))""",
    # returned transfers applied in the period (rulebook §10), for the release's files
    layout.RETURNED_TRANSFERS: """(
        period varchar not null, promoter_id varchar not null, from_period varchar not null,
        batch_id varchar not null, out_bill_no varchar not null, state varchar not null,
        gross_fen bigint not null, primary key (period, out_bill_no))""",
}


def replace_period(con, table: str, period: str, df) -> None:
    """Replace one period's rows of `table` (declared in TABLES) in one transaction: the table,
    any column added since the warehouse was made, and the rows all commit together or not at all."""
    schema, _, _ = table.partition(".")
    con.register("_incoming", df)
    con.execute("begin")
    try:
        con.execute(f"create schema if not exists {schema}")
        con.execute(f"create table if not exists {table} {TABLES[table]}")
        have = {r[0] for r in con.execute("select column_name from information_schema.columns where "
                                          "table_schema = ? and table_name = ?", table.split(".")).fetchall()}
        for col in df.columns:   # a warehouse made before a column was added (e.g. returned_fen) gets it
            if col not in have:
                con.execute(f"alter table {table} add column {col} bigint default 0")
        con.execute(f"delete from {table} where period = ?", [period])
        con.execute(f"insert into {table} by name select * from _incoming")
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    finally:
        con.unregister("_incoming")
