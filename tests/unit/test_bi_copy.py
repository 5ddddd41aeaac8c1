"""o2p.bi.publish_duckdb: the marts, copied whole into a new file swapped in atomically; a reader
holding the old copy keeps reading it, unblocked, until it reconnects."""

import os
import subprocess
import sys
import textwrap

import duckdb
import pytest

from o2p.bi import publish_duckdb


def _warehouse(path, rows):
    with duckdb.connect(str(path)) as con:
        con.execute("create schema if not exists marts; create schema if not exists staging")
        con.execute("create or replace table marts.fct_x as select * from range(?) t(n)", [rows])
        con.execute("create or replace table staging.stg_y as select 1 as n")
        con.execute("create or replace view marts.v_x as select n from marts.fct_x")


def test_only_the_marts_are_published_their_views_as_tables_and_nothing_temporary_is_left(tmp_path):
    _warehouse(tmp_path / "w.duckdb", 3)
    target = tmp_path / "bi" / "o2p_bi.duckdb"
    assert publish_duckdb(tmp_path / "w.duckdb", target) == {"marts.fct_x": 3, "marts.v_x": 3}
    with duckdb.connect(str(target), read_only=True) as con:
        assert con.execute("select table_schema || '.' || table_name, table_type from information_schema.tables "
                           "order by 1").fetchall() == [("marts.fct_x", "BASE TABLE"), ("marts.v_x", "BASE TABLE")]
    assert os.listdir(target.parent) == ["o2p_bi.duckdb"]


def test_a_reader_in_another_process_keeps_the_old_copy_until_it_reconnects(tmp_path):
    """The reader is another process (as Superset is), holding a read-only connection, which is
    what blocks a writer of the same file: the refresh writes another file, so it is not blocked."""
    _warehouse(tmp_path / "w.duckdb", 3)
    target = tmp_path / "o2p_bi.duckdb"
    publish_duckdb(tmp_path / "w.duckdb", target)
    reader = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, duckdb
        con = duckdb.connect({str(target)!r}, read_only=True)
        count = lambda c: c.execute("select count(*) from marts.fct_x").fetchone()[0]
        print(count(con), flush=True)
        sys.stdin.readline()                 # the refresh happens here
        print(count(con), flush=True)
        con.close()
        print(count(duckdb.connect({str(target)!r}, read_only=True)), flush=True)
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline().strip() == "3"
        _warehouse(tmp_path / "w.duckdb", 5)
        assert publish_duckdb(tmp_path / "w.duckdb", target) == {"marts.fct_x": 5, "marts.v_x": 5}
        reader.stdin.write("\n")
        reader.stdin.flush()
        assert reader.stdout.readline().strip() == "3"     # the old inode, whole
        assert reader.stdout.readline().strip() == "5"     # reconnected: the new copy
    finally:
        reader.kill()
        reader.wait()


def test_a_failed_refresh_leaves_the_old_copy_and_no_temporary_file(tmp_path):
    _warehouse(tmp_path / "w.duckdb", 3)
    target = tmp_path / "o2p_bi.duckdb"
    publish_duckdb(tmp_path / "w.duckdb", target)
    with pytest.raises(duckdb.Error):
        publish_duckdb(tmp_path / "missing.duckdb", target)
    assert set(os.listdir(tmp_path)) == {"w.duckdb", "o2p_bi.duckdb"}
    with duckdb.connect(str(target), read_only=True) as con:
        assert con.execute("select count(*) from marts.fct_x").fetchone()[0] == 3


def test_a_bi_postgres_url_that_is_not_postgresql_is_refused_at_start_up(tmp_path):
    from o2p.config import load_config
    from o2p.errors import InputError

    (tmp_path / "o2p.yaml").write_text('bi:\n  postgres_url: "sqlite:///bi.sqlite"\n')
    with pytest.raises(InputError, match=r"bi.postgres_url: .*must be a postgresql URL"):
        load_config(tmp_path / "o2p.yaml", home=tmp_path)
    (tmp_path / "o2p.yaml").write_text('bi:\n  postgres_url: "postgresql+psycopg://bi@127.0.0.1:5432/analytics"\n')
    assert load_config(tmp_path / "o2p.yaml", home=tmp_path).bi.postgres_url.endswith("/analytics")
    assert load_config(None, home=tmp_path).bi.postgres_url is None   # default: no PostgreSQL copy
