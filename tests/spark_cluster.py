"""A real Spark standalone cluster on loopback (a master and one worker started from the pyspark
installation's own `spark-class`), for the test that runs the attribution code on `spark://`."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


@contextlib.contextmanager
def standalone_cluster(workdir: Path, cores: int = 2, memory: str = "2g"):
    """Yields the master URL; stops the worker and the master on exit."""
    home = _spark_home()
    env = {**os.environ, "SPARK_HOME": str(home), "SPARK_LOCAL_IP": "127.0.0.1",
           "SPARK_WORKER_DIR": str(workdir / "work"), "SPARK_LOG_DIR": str(workdir / "logs")}
    port, ui, worker_ui = _free_port(), _free_port(), _free_port()
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
        procs.append(subprocess.Popen(
            spark_class + ["org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--webui-port",
                           str(worker_ui), "--cores", str(cores), "--memory", memory, master_url],
            env=env, stdout=open(workdir / "worker.log", "wb"), stderr=subprocess.STDOUT, start_new_session=True))
        _wait(lambda: (_status(ui) or {}).get("aliveworkers", 0) >= 1, 90,
              f"no Spark worker registered; see {workdir / 'worker.log'}")
        yield master_url
    finally:
        for p in reversed(procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, 15)
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, 9)
                p.wait()


def _status(ui_port: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=2) as r:
            return json.load(r)
    except OSError:
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
