"""A real Spark standalone cluster on loopback (a master and one or more workers started from the
pyspark installation's own `spark-class`), for the tests that run the attribution code on
`spark://`, one of them killing a worker in the middle of the job."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


@dataclass
class SparkCluster:
    master: str                 # spark://127.0.0.1:port
    ui_port: int                # the master's web UI (and its /json/)
    workers: list = field(default_factory=list)   # Popen of each worker (its executors are in its group)

    def status(self) -> dict | None:
        return _status(self.ui_port)

    def kill_worker(self, i: int) -> None:
        """kill -9 of worker i and of its executor (one process group)."""
        os.killpg(self.workers[i].pid, 9)
        self.workers[i].wait()


@contextlib.contextmanager
def standalone_cluster(workdir: Path, cores: int = 2, memory: str = "2g", workers: int = 1):
    """Yields a SparkCluster (master URL, UI port, workers); stops the workers and the master on
    exit."""
    home = _spark_home()
    env = {**os.environ, "SPARK_HOME": str(home), "SPARK_LOCAL_IP": "127.0.0.1",
           "SPARK_WORKER_DIR": str(workdir / "work"), "SPARK_LOG_DIR": str(workdir / "logs")}
    port, ui = _free_port(), _free_port()
    master_url = f"spark://127.0.0.1:{port}"
    workdir.mkdir(parents=True, exist_ok=True)
    spark_class = [str(home / "bin" / "spark-class")]
    procs = []
    try:
        procs.append(subprocess.Popen(
            spark_class + ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
                           "--webui-port", str(ui)],
            env=env, stdout=open(workdir / "master.log", "wb"), stderr=subprocess.STDOUT, start_new_session=True))
        _wait(lambda: _status(ui) is not None, 90, f"the Spark master did not start; see {workdir / 'master.log'}")
        cluster = SparkCluster(master_url, ui)
        for i in range(workers):
            cluster.workers.append(subprocess.Popen(
                spark_class + ["org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--webui-port",
                               str(_free_port()), "--cores", str(cores), "--memory", memory,
                               "--work-dir", str(workdir / f"work-{i + 1}"), master_url],
                env=env, stdout=open(workdir / f"worker-{i + 1}.log", "wb"), stderr=subprocess.STDOUT,
                start_new_session=True))
            procs.append(cluster.workers[-1])
        _wait(lambda: (_status(ui) or {}).get("aliveworkers", 0) >= workers, 90,
              f"{workers} Spark worker(s) did not register; see {workdir}/worker-*.log")
        yield cluster
    finally:
        for p in reversed(procs):
            if p.poll() is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, 15)
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, 9)
                p.wait()


def _status(ui_port: int) -> dict | None:
    return get_json(f"http://127.0.0.1:{ui_port}/json/")


def get_json(url: str):
    """The JSON at url (the master's /json/, an application's /api/v1/...), None when not there."""
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return json.load(r)
    except (OSError, ValueError):
        return None


def _wait(ok, seconds: float, message: str) -> None:
    deadline = time.monotonic() + seconds
    while not ok():
        if time.monotonic() > deadline:
            raise TimeoutError(message)
        time.sleep(0.5)


def main(argv: list[str]) -> int:
    """python -m tests.spark_cluster CONFIG HOME FIRST LAST: run click validity and attribution for
    FIRST..LAST with the config's spark.master, print what ran where as JSON."""
    from o2p.config import load_config
    from o2p.reference import load_reference
    from pipelines.assets.attribution.spark_jobs import run_attribution, run_click_validity
    from pipelines.lib.spark import get_spark

    config, home, first, last = argv
    cfg = load_config(config, home=home)
    spark = get_spark(cfg)
    stats = {"master": spark.sparkContext.master,
             "validity": run_click_validity(spark, cfg, first, last),
             "attribution": run_attribution(spark, cfg, first, last, load_reference(cfg.reference_path, encoding=cfg.reference_encoding).promoters)}
    executors = spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size()   # the driver counts as one
    stats["executors"] = executors - 1
    print(json.dumps(stats))
    spark.stop()
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
