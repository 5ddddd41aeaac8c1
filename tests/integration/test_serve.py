"""One Dagster instance per home (issue #17): the runs `o2p run` made under $O2P_HOME are the runs
`o2p serve` (and `./dev ui`) shows, tagged with the command and the person; monthly partitions
are YYYY-MM; telemetry is off. The real webserver and daemon, asked through their GraphQL API."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from o2p.config import load_config
from streaming.broker import free_port_pair
from streaming.capture.sink import Rec, Sink
from streaming.producer import encode
from tests.conftest import REPO
from tests.inprocess import o2p_here
from tests.integration.test_end_to_end import EVENTS, PRODUCTS, PROMOTERS, RULES

pytestmark = pytest.mark.integration

RUNS = "{ runsOrError { ... on Runs { results { jobName status tags { key value } } } } }"


def _land(cfg) -> None:
    """The end-to-end test's events, landed by capture's own sink (no broker needed here)."""
    sink = Sink(cfg)
    topics = {"click": cfg.kafka.topics.clicks, "refund": cfg.kafka.topics.refunds}
    offsets: dict[str, int] = {}
    for e in EVENTS:
        topic = topics.get(e["event_type"], cfg.kafka.topics.orders)
        sink.acquire(topic, 0)
        sink.recover(topic, 0)
        offsets[topic] = offsets.get(topic, -1) + 1
        sink.land(topic, 0, [Rec(offsets[topic], None, encode(e), 0)])
    sink.close()


def _graphql(port: int, query: str) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())["data"]


def _home_with_events(tmp_path, automation: bool = True) -> tuple:
    """A home whose landing zone holds the end-to-end test's events; the env to run o2p in it
    (with the daemon's automation switched off, `o2p serve` only shows what the CLI did)."""
    home, ref = tmp_path / "home", tmp_path / "reference"
    ref.mkdir()
    (ref / "promoters.csv").write_text(PROMOTERS, encoding="utf-8")
    (ref / "products.csv").write_text(PRODUCTS, encoding="utf-8")
    (ref / "commission_rules.csv").write_text(RULES, encoding="utf-8")
    cfg_file = tmp_path / "o2p.yaml"
    cfg_file.write_text(f"reference_dir: {json.dumps(str(ref))}\n"
                        'spark:\n  conf: {"spark.sql.shuffle.partitions": "2"}\n'
                        "quality:\n  max_event_age_days: 36500\n"
                        + ("" if automation else "automation:\n  attribute_landed_days: false\n  commission_estimates: false\n"
                           "  monthly_release: false\n  reference_data: false\n"))
    cfg = load_config(cfg_file, home=home)
    _land(cfg)
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env |= {"O2P_CONFIG": str(cfg_file), "O2P_HOME": str(home), "O2P_USER": "analyst-li"}
    return home, env


def test_the_ui_shows_the_runs_the_cli_made_in_this_home(tmp_path, monkeypatch):
    home, env = _home_with_events(tmp_path, automation=False)
    # no DAGSTER_HOME at all (an in-process CLI run of another test may have set one here)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    # `o2p run` in this process (the session's Spark, no second JVM); `o2p serve` below is another
    o2p_here("run", env={k: env[k] for k in ("O2P_CONFIG", "O2P_HOME", "O2P_USER")}, unset=("DAGSTER_HOME",))
    yaml = (home / "dagster" / "dagster.yaml").read_text()
    assert "telemetry:\n  enabled: false" in yaml and "nux:\n  enabled: false" in yaml   # no calls home, no sign-up modal

    port = free_port_pair()
    log = open(tmp_path / "serve.log", "w")
    serve = subprocess.Popen([sys.executable, "-m", "o2p.cli", "serve", "--port", str(port)], cwd=REPO,
                             env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            assert serve.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, "o2p serve did not listen within 180 s"
            time.sleep(1)
        runs = _graphql(port, RUNS)["runsOrError"]["results"]
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        try:
            serve.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(serve.pid, signal.SIGKILL)
    got = sorted((r["jobName"], r["status"], {t["key"]: t["value"] for t in r["tags"]}.get("dagster/partition"))
                 for r in runs)
    assert got == [("attribution_job", "SUCCESS", None), ("commission_job", "SUCCESS", "2026-10"),
                   ("reference_job", "SUCCESS", None)], got
    for r in runs:
        tags = {t["key"]: t["value"] for t in r["tags"]}
        assert tags["o2p/command"] == "o2p run" and tags["o2p/user"] == "analyst-li", tags


def test_a_dagster_home_that_does_not_exist_is_created_with_telemetry_off(tmp_path, monkeypatch):
    from pipelines.lib.instance import dagster_home

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "new" / "dagster"))
    home, note = dagster_home(load_config(home=tmp_path / "o2p"))
    assert home == tmp_path / "new" / "dagster" and "did not exist: created it" in note
    assert "enabled: false" in (home / "dagster.yaml").read_text()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: true\n")     # an operator's own file stays
    assert dagster_home(load_config(home=tmp_path / "o2p")) == (home, None)
    assert "enabled: true" in (home / "dagster.yaml").read_text()


def test_the_production_instance_keeps_the_runs_in_postgresql(tmp_path, postgres, monkeypatch):
    """deploy/dagster.yaml as documented: run, event-log and schedule storage in PostgreSQL."""
    import shutil

    import psycopg
    from dagster import DagsterInstance

    from o2p import cli

    home, env = _home_with_events(tmp_path)
    instance_dir = tmp_path / "dagster-prod"
    instance_dir.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", instance_dir / "dagster.yaml")
    # dagster-postgres speaks psycopg2 (SQLAlchemy 2.1's default PostgreSQL driver is psycopg 3)
    url = postgres.database("dagster").replace("postgresql+psycopg://", "postgresql+psycopg2://")
    for key in ("O2P_HOME", "O2P_CONFIG", "O2P_USER"):
        monkeypatch.setenv(key, env[key])
    monkeypatch.setenv("DAGSTER_HOME", str(instance_dir))
    monkeypatch.setenv("DAGSTER_PG_URL", url)
    # the CLI's own way of running a job (the reference job: the quickest), on this instance
    cli._execute(load_config(env["O2P_CONFIG"], home=home), "reference_job")
    assert not (instance_dir / "history").exists()       # no SQLite run storage beside the yaml
    with psycopg.connect(url.replace("+psycopg2", "")) as con:
        assert con.execute("select count(*) from runs").fetchone() == (1,)
    with DagsterInstance.from_config(str(instance_dir)) as instance:
        [run] = instance.get_runs()
        assert run.job_name == "reference_job" and run.tags["o2p/user"] == "analyst-li"
        assert instance.run_retries_max_retries == 2
