"""A scratch PostgreSQL server (Debian's `postgresql` package) on loopback, for the registry tests.

    with postgres_server() as server:
        url = server.database("t1")      # a fresh database, as a SQLAlchemy URL

The server runs as the `postgres` user when the tests run as root (PostgreSQL refuses root), with
trust authentication on 127.0.0.1 only, fsync off, in a temporary folder removed afterwards.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path


def pg_bin() -> Path | None:
    found = shutil.which("initdb") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))[-1:]), None)
    return Path(found).resolve().parent if found else None


class Server:
    def __init__(self, port: int):
        self.port = port
        self.admin_url = f"postgresql://o2p@127.0.0.1:{port}/postgres"

    def database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as con:
            con.execute(f'drop database if exists "{name}"')
            con.execute(f'create database "{name}"')
        return f"postgresql+psycopg://o2p@127.0.0.1:{self.port}/{name}"


@contextmanager
def postgres_server():
    bindir = pg_bin()
    if bindir is None:
        raise FileNotFoundError("PostgreSQL is not installed (apt-get install postgresql)")
    base = Path(tempfile.mkdtemp(prefix="o2p-pg-"))
    as_root = os.geteuid() == 0

    def run(*cmd: str) -> None:
        full = ["runuser", "-u", "postgres", "--", *cmd] if as_root else list(cmd)
        proc = subprocess.run(full, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    if as_root:
        shutil.chown(base, "postgres", "postgres")
    data = base / "data"
    run(str(bindir / "initdb"), "-D", str(data), "-U", "o2p", "--auth=trust", "-E", "UTF8", "--no-locale")
    opts = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
    run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-w", "-o", opts, "start")
    try:
        yield Server(port)
    finally:
        try:
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(base, ignore_errors=True)
