import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _free_pair() -> int:
    """A port p with p+1 also free (broker and controller listeners)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port >= 65000:
            continue
        with socket.socket() as s2:
            try:
                s2.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair")


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    """A real single-node KRaft broker on loopback for the whole test session."""
    from o2p.config import load_config
    from streaming import broker as kb

    home = tmp_path_factory.mktemp("broker_home")
    port = _free_pair()
    cfg_file = home / "broker.yaml"
    cfg_file.write_text(f'kafka:\n  bootstrap_servers: "127.0.0.1:{port}"\n')
    cfg = load_config(cfg_file, home=home)
    kb.up(cfg, log=lambda *_: None)
    yield cfg
    kb.down(cfg, log=lambda *_: None)


def run_o2p(*args, env=None, check=True, timeout=600):
    """Run the real `o2p` command in a subprocess; returns CompletedProcess."""
    e = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "o2p.cli", *args], capture_output=True, text=True,
                          env=e, timeout=timeout, cwd=REPO)
    if check and proc.returncode != 0:
        raise AssertionError(f"o2p {' '.join(args)} exited {proc.returncode}\nstdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-6000:]}")
    return proc
