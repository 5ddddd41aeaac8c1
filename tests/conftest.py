import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def pytest_configure(config):
    """The dbt manifest the Dagster definitions load (./dev prepares it at install; a test
    session on a changed model parses it again, as `o2p run` does)."""
    from pipelines.lib.dbt_manifest import prepare

    prepare()


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    """A real single-node KRaft broker on loopback for the whole test session."""
    from streaming.broker import scratch_broker

    with scratch_broker(tmp_path_factory.mktemp("broker_home"), log=lambda *_: None) as cfg:
        yield cfg


@pytest.fixture(scope="session")
def kafka_cluster(tmp_path_factory):
    """A real local KRaft cluster of three combined nodes (broker + controller each) on loopback
    for the whole session: topics with replication factor 3 and min.insync.replicas 2. A test
    that kills a node restarts it (`tests.kafka_cluster.restore`) before it ends."""
    from streaming.broker import scratch_broker

    with scratch_broker(tmp_path_factory.mktemp("cluster_home"), log=lambda *_: None, brokers=3) as cfg:
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


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server on loopback for the session (Debian's package); skipped when it
    is not installed, unless O2P_REQUIRE_POSTGRES=1 (CI), where it must run."""
    from tests.postgres import pg_bin, postgres_server

    if pg_bin() is None:
        if os.environ.get("O2P_REQUIRE_POSTGRES") == "1":
            pytest.fail("PostgreSQL is required (O2P_REQUIRE_POSTGRES=1) but initdb is not installed")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    with postgres_server() as server:
        yield server
