import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    """A real single-node KRaft broker on loopback for the whole test session."""
    from streaming.broker import scratch_broker

    with scratch_broker(tmp_path_factory.mktemp("broker_home"), log=lambda *_: None) as cfg:
        yield cfg


def run_o2p(*args, env=None, check=True, timeout=600):
    """Run the real `o2p` command in a subprocess; returns CompletedProcess."""
    e = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "o2p.cli", *args], capture_output=True, text=True,
                          env=e, timeout=timeout, cwd=REPO)
    if check and proc.returncode != 0:
        raise AssertionError(f"o2p {' '.join(args)} exited {proc.returncode}\nstdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-6000:]}")
    return proc


@pytest.fixture(scope="session")
def spark_cfg(tmp_path_factory):
    """A config whose home is a scratch folder, and its (shared, local-mode) Spark session."""
    from o2p.config import load_config
    from pipelines.lib.spark import get_spark

    home = tmp_path_factory.mktemp("spark_home")
    (home / "o2p.yaml").write_text('spark:\n  conf:\n    spark.sql.shuffle.partitions: "2"\n')
    cfg = load_config(home / "o2p.yaml", home=home)
    return cfg, get_spark(cfg)
