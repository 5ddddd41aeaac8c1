"""The real `o2p` command run in the test's own process (`o2p.cli.main`), for commands that start
Spark or load the Dagster definitions: a subprocess pays the JVM's start-up and the imports of
Dagster, dbt and GX again (15-25 s on 2 cores); here the session's Spark (tests/conftest.py
`spark_cfg`, same `spark.conf`) and the imported modules are reused. Same arguments, exit code
and output as `tests.conftest.run_o2p`; the environment is put back as it was afterwards."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess

# what a command may set for itself (`--as`, the instance of the home): put back afterwards
_SET_BY_O2P = ("O2P_USER", "O2P_HOME", "O2P_CONFIG", "DAGSTER_HOME")


def o2p_here(*args: str, env: dict | None = None, check: bool = True, unset: tuple[str, ...] = ()):
    """`o2p *args` with `env` set (and `unset` removed) for the call only; a CompletedProcess
    whose stdout/stderr are what the command printed."""
    from o2p import cli

    keys = {*(env or {}), *unset, *_SET_BY_O2P}
    saved = {k: os.environ.get(k) for k in keys}
    out, err = io.StringIO(), io.StringIO()
    try:
        for key in unset:
            os.environ.pop(key, None)
        os.environ.update(env or {})
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(list(args))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    proc = subprocess.CompletedProcess(["o2p", *args], code, out.getvalue(), err.getvalue())
    if check and code != 0:
        raise AssertionError(f"o2p {' '.join(args)} exited {code}\nstdout:\n{proc.stdout[-4000:]}\n"
                             f"stderr:\n{proc.stderr[-6000:]}")
    return proc
