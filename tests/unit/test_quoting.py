"""o2p.quoting: every path reaches DuckDB, dbt and the broker's properties intact (issue #11)."""

import os
from pathlib import Path

import duckdb
import pytest

from o2p.quoting import alias, dbt_glob, file_list, glob_root, hadoop_path, java_property, literal

HOSTILE = "it's \"here\" $HOME \\ 家 {x} [y] *?,"


def test_a_literal_holds_any_text_exactly():
    con = duckdb.connect()
    for text in ["plain", "it's", "''", "back\\slash", "$HOME", "家 目录", HOSTILE, "a'; drop table x; --"]:
        assert con.execute(f"select {literal(text)}").fetchone()[0] == text
    with pytest.raises(ValueError):
        literal("nul\x00byte")


def _parquet(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    duckdb.connect().execute(f"copy (select 42 as x) to {literal(path)} (format parquet)")


def test_duckdb_reads_explicit_files_and_globs_under_a_hostile_home(tmp_path):
    home = tmp_path / HOSTILE
    f = home / "landing" / "orders" / "event_date=2026-10-01" / "a.parquet"
    _parquet(f)
    con = duckdb.connect()
    assert con.execute(f"select x from read_parquet({file_list([f])})").fetchall() == [(42,)]
    # a raw glob under this folder finds nothing (DuckDB splits on the backslash): the alias does
    raw = literal(str(home / "landing") + "/orders/*/*.parquet")
    with pytest.raises(duckdb.IOException):
        con.execute(f"select x from read_parquet({raw})").fetchall()
    root = glob_root(home / "landing")
    assert root != home / "landing" and os.path.realpath(root) == os.path.realpath(home / "landing")
    glob = dbt_glob(home / "landing", "{name}/*/*.parquet").format_map({"name": "orders"})
    assert con.execute(f"select x from read_parquet({glob})").fetchall() == [(42,)]
    assert glob_root(home / "landing") == root          # the same alias, made once
    plain = tmp_path / "plain"
    assert glob_root(plain) == plain                     # a harmless path is used as it is


def test_dbt_glob_survives_dbt_duckdb_formatting_with_braces():
    text = dbt_glob("/tmp/a{b}'c", "{name}.parquet")
    # the alias (braces are glob characters too) leaves no brace of the path to format
    assert text.format_map({"name": "t"}).endswith("/t.parquet'")


def test_hadoop_paths_escape_glob_characters():
    assert hadoop_path("/a\\b/c*d?e[f]{g}") == "/a\\\\b/c\\*d\\?e\\[f\\]\\{g\\}"
    assert hadoop_path("/plain/家 $x'") == "/plain/家 $x'"


def test_java_property_values_round_trip_through_java_rules():
    # what java.util.Properties.load does with a value: \\uXXXX and \\\\ unescaped, read as Latin-1
    def load(value: str) -> str:
        out, i = [], 0
        while i < len(value):
            if value[i] == "\\":
                if value[i + 1] == "u":
                    out.append(chr(int(value[i + 2:i + 6], 16)))
                    i += 6
                    continue
                out.append(value[i + 1])
                i += 2
                continue
            out.append(value[i])
            i += 1
        return "".join(out).encode("utf-16", "surrogatepass").decode("utf-16")

    for text in [HOSTILE, " leading space", "tab\there", "😀 emoji"]:
        value = java_property(text)
        assert value.isascii() and "\n" not in value
        assert load(value) == text


def test_alias_of_a_path_with_a_comma(tmp_path):
    target = tmp_path / "a,b"
    target.mkdir()
    link = alias(target, ",")
    assert "," not in str(link) and os.path.samefile(link, target)
