r"""The one way a path or a value reaches text that another program parses: SQL (DuckDB,
dbt-duckdb), Spark's readers, the Kafka broker's properties file.

A home path may hold any character a file system allows (a space, both quotes, `$`, a
backslash, Chinese letters…), and every stage must reach the same files through it.

Values are bound as parameters (`con.execute(sql, [value])`) wherever the engine takes them.
Where it cannot — a file list in `read_parquet(...)`, a dbt source's `external_location`, the
paths handed to `spark.read.parquet` — the text is built here and nowhere else:

- `literal(text)`: a standard SQL string literal (`'` doubled; a backslash is an ordinary
  character in DuckDB's and PostgreSQL's standard strings). Used for every path in SQL.
- `file_list(paths)`: a DuckDB list of literals, for `read_parquet([...])` of explicit files.
- `glob_root(path)`: a folder that DuckDB can *glob* under. DuckDB's file globbing splits a
  pattern on `\` as well as `/` and has no escape for `*`, `?` or `[`, so a folder whose path
  holds one of them cannot be globbed at all ("No files found"). Such a folder is reached
  through an alias: a symbolic link named by the folder's hash in a private directory of the
  user's temp folder (`/tmp/o2p-<uid>/<hash>` → the folder), made once and kept up to date.
  Every other path is returned as it is.
- `dbt_glob(root, tail)`: the quoted glob for a dbt source's `external_location`, with the
  braces that dbt-duckdb's `str.format_map` would read doubled.
- `hadoop_path(path)`: a path for Spark's readers, which expand Hadoop globs: the glob
  characters are escaped with a backslash (Spark's writers take paths as they are).
- `java_property(text)`: a value for a Java `.properties` file (read as ISO-8859-1, `\` an
  escape): backslashes doubled, everything outside printable ASCII as `\uXXXX`.
- `alias(path, hostile)`: the alias folder above, for any reader that cannot take some
  character at all (DuckDB's globs; the broker's comma-separated `log.dirs`).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

_DUCKDB_GLOB_HOSTILE = frozenset("\\*?[]{}")
_HADOOP_GLOB = frozenset("\\*?[]{}")


def literal(text: str | os.PathLike) -> str:
    """A SQL string literal holding `text` exactly."""
    s = os.fspath(text)
    if "\x00" in s:
        raise ValueError("a NUL character cannot be part of a SQL string")
    return "'" + s.replace("'", "''") + "'"


def file_list(paths: Iterable[str | os.PathLike]) -> str:
    """`[ 'a', 'b' ]` for DuckDB's read_parquet of explicit files (files are never globbed when
    named one by one, so any character is fine here)."""
    return "[" + ", ".join(literal(p) for p in paths) + "]"


def alias_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"o2p-{os.getuid()}"


def glob_root(path: str | os.PathLike) -> Path:
    """`path`, or an alias of it that DuckDB can glob under (see the module docstring)."""
    return alias(path, _DUCKDB_GLOB_HOSTILE)


def alias(path: str | os.PathLike, hostile: frozenset[str] | str) -> Path:
    """`path` made absolute, or — when it holds a character of `hostile` — a symbolic link to it
    named by its hash in a private folder of the temp directory (no hostile character there)."""
    real = Path(os.path.abspath(os.fspath(path)))
    if not (set(hostile) & set(str(real))):
        return real
    base = alias_dir()
    base.mkdir(mode=0o700, exist_ok=True)
    if base.stat().st_uid != os.getuid() or base.is_symlink():
        raise PermissionError(f"{base} is not a private folder of this user; remove it")
    link = base / hashlib.sha256(str(real).encode("utf-8", "surrogateescape")).hexdigest()[:20]
    try:
        if os.readlink(link) == str(real):
            return link
    except OSError:
        pass
    tmp = base / f".{link.name}.{os.getpid()}"
    tmp.unlink(missing_ok=True)
    os.symlink(real, tmp)
    os.replace(tmp, link)   # atomic: a concurrent reader sees the old link or the new one
    return link


def dbt_glob(root: str | os.PathLike, tail: str) -> str:
    """The quoted pattern `root/tail` for a dbt-duckdb `external_location` (which formats the text
    with `{identifier}`, the source table's folder: braces of the path are doubled so they survive it)."""
    quoted = literal(glob_root(root))[:-1].replace("{", "{{").replace("}", "}}")
    return quoted + "/" + tail + "'"


def hadoop_path(path: str | os.PathLike) -> str:
    """A path for `spark.read.*`: Hadoop glob characters escaped."""
    return "".join("\\" + c if c in _HADOOP_GLOB else c for c in os.fspath(path))


def java_property(text: str | os.PathLike) -> str:
    """`text` as the value of a line of a Java .properties file."""
    out = []
    for i, c in enumerate(os.fspath(text)):
        if c == "\\":
            out.append("\\\\")
        elif c in "\n\r\t\f" or (c == " " and i == 0) or not (" " <= c <= "~"):
            out.append("".join(f"\\u{u:04x}" for u in _utf16_units(c)))
        else:
            out.append(c)
    return "".join(out)


def _utf16_units(c: str) -> list[int]:
    data = c.encode("utf-16-be", "surrogatepass")
    return [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]
