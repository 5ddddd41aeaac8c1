"""Dagster operates the pipeline by itself, and the UI is where it is operated (issue #17).

One `o2p serve` (webserver and daemon, the project's instance under a scratch O2P_HOME) after a
capture: the daemon's sensors attribute the landed days and compute commission with no CLI
command; then, in headless Debian Chromium through the UI only, an engineer sees the asset graph
and the running automation, re-materializes one attribution day (its `gx_landing` passes: the
dead-letter share is judged per capture day) and launches the release of an ended month, whose
materialization names the payout folder. Screenshots are kept in tests/artifacts/ui/.

Then the same world computed three ways — (a) `o2p run`, (b) the automation above, (c) every day
re-run alone in random order — gives identical warehouse tables and byte-identical payout files.
"""

import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from o2p.config import load_config
from streaming.broker import free_port_pair
from tests.conftest import REPO
from tests.inprocess import o2p_here
from tests.integration.test_serve import _graphql, _home_with_events

pytestmark = pytest.mark.integration

ARTIFACTS = REPO / "tests" / "artifacts" / "ui"
RUNS = ("{ runsOrError { ... on Runs { results { runId jobName status "
        "tags { key value } } } } }")


def _runs(port: int) -> list[dict]:
    out = []
    for r in _graphql(port, RUNS)["runsOrError"]["results"]:
        r["tags"] = {t["key"]: t["value"] for t in r["tags"]}
        out.append(r)
    return out


def _wait(what: str, predicate, timeout: float, serve=None, log: Path | None = None, every: float = 2):
    deadline = time.monotonic() + timeout
    while True:
        if serve is not None and serve.poll() is not None:
            pytest.fail(f"o2p serve exited while waiting for {what}:\n{log.read_text()[-3000:] if log else ''}")
        got = predicate()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f} s")
        time.sleep(every)


class Served:
    def __init__(self, home: Path, env: dict, port: int, serve, log: Path):
        self.home, self.env, self.port, self.serve, self.log = home, env, port, serve, log
        self.timings: dict[str, float] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def failed_runs(self) -> list[dict]:
        return [r for r in _runs(self.port) if r["status"] == "FAILURE"]

    def wait_run(self, predicate, what: str, timeout: float = 420) -> dict:
        def done():
            runs = [r for r in _runs(self.port) if predicate(r)]
            if any(r["status"] in ("FAILURE", "CANCELED") for r in runs):
                pytest.fail(f"{what} failed: {runs}; see {self.log}")
            return next((r for r in runs if r["status"] == "SUCCESS"), None)
        return _wait(what, done, timeout, self.serve, self.log)


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _loaded(port: int) -> bool:
    q = "{ workspaceOrError { ... on Workspace { locationEntries { locationOrLoadError { __typename } } } } }"
    entries = _graphql(port, q)["workspaceOrError"]["locationEntries"]
    return bool(entries) and all(e["locationOrLoadError"] and
                                 e["locationOrLoadError"]["__typename"] == "RepositoryLocation" for e in entries)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("operate")
    home, env = _home_with_events(tmp)
    port = free_port_pair()
    log = tmp / "serve.log"
    t0 = time.monotonic()
    with open(log, "w") as fh:
        serve = subprocess.Popen([sys.executable, "-m", "o2p.cli", "serve", "--port", str(port)], cwd=REPO, env=env,
                                 stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    s = Served(home, env, port, serve, log)
    try:
        _wait("o2p serve listening", lambda: _listening(port), 180, serve, log, 0.5)
        s.timings["serve_listening_s"] = time.monotonic() - t0
        _wait("the code location loaded", lambda: _loaded(port), 180, serve, log, 0.5)
        s.timings["serve_loaded_s"] = time.monotonic() - t0
        # no CLI command: the reference sensor, the landing sensor and the commission sensor do it
        s.wait_run(lambda r: r["jobName"] == "commission_job" and r["tags"].get("dagster/partition") == "2026-10"
                   and r["tags"].get("o2p/automation") == "commission_after_attribution",
                   "automation: commission of 2026-10 after the landed days' attribution")
        s.timings["automation_cycle_s"] = time.monotonic() - t0 - s.timings["serve_loaded_s"]
        yield s
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "timings.json").write_text(json.dumps(s.timings, indent=1))
        print(f"\no2p serve timings: {s.timings}")
        os.killpg(serve.pid, signal.SIGTERM)
        try:
            serve.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait(timeout=30)


def test_automation_ran_everything_without_a_command(served):
    runs = _runs(served.port)
    by = sorted((r["jobName"], r["tags"].get("o2p/automation"), r["status"]) for r in runs)
    assert ("reference_job", "reference_sensor", "SUCCESS") in by
    assert ("attribution_job", "landing_sensor", "SUCCESS") in by, by
    assert not [r for r in runs if "o2p/command" in r["tags"]]   # nothing was started by the CLI
    assert not served.failed_runs()
    # the mart's materialization carries its row count for the period and a preview of its rows
    import duckdb

    q = ('{ assetOrError(assetKey: {path: ["marts", "fct_commission_entitlements"]}) { ... on Asset { '
         'assetMaterializations(limit: 1) { partition metadataEntries { label '
         '... on IntMetadataEntry { intValue } ... on MarkdownMetadataEntry { mdStr } } } } } }')
    [mat] = _graphql(served.port, q)["assetOrError"]["assetMaterializations"]
    meta = {e["label"]: e.get("intValue", e.get("mdStr")) for e in mat["metadataEntries"]}
    with duckdb.connect(str(served.home / "warehouse" / "o2p.duckdb"), read_only=True) as con:
        (rows,) = con.execute("select count(*) from marts.fct_commission_entitlements where period = '2026-10'").fetchone()
        (first,) = con.execute("select order_id from marts.fct_commission_entitlements where period = '2026-10' "
                               "order by all limit 1").fetchone()
    assert mat["partition"] == "2026-10" and meta["dagster/row_count"] == rows > 0, meta
    assert meta["preview"].startswith(f"first {min(rows, 5)} of {rows} rows of 2026-10") and first in meta["preview"]


# ---- the browser ------------------------------------------------------------------------

@contextlib.contextmanager
def browser():
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium and chromium-driver are required in CI (./dev test installs them)")
        pytest.skip("chromium / chromedriver not installed (./dev test installs them)")
    os.environ["SE_OFFLINE"] = "true"      # Selenium Manager must not download a driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1600,1000",
              "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    d = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
    d.implicitly_wait(15)
    try:
        yield d
    finally:
        d.quit()


def _hosts(d) -> set[str]:
    hosts = set()
    for e in d.get_log("performance"):
        m = json.loads(e["message"])["message"]
        if m["method"] == "Network.requestWillBeSent":
            url = m["params"]["request"]["url"]
            if url.startswith(("http://", "https://", "ws://", "wss://")):
                hosts.add(url.split("/")[2].rsplit(":", 1)[0])
    return hosts


def _shot(d, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    d.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def _text_appears(d, text: str, timeout: float = 30) -> None:
    from selenium.webdriver.common.by import By

    _wait(f"{text!r} on {d.current_url}", lambda: text in d.find_element(By.TAG_NAME, "body").text, timeout, every=0.5)


def _launch_partition(d, served, job: str, key: str) -> None:
    """The job's page → "Materialize all…" → the partition typed in → "Launch 1 run"."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    d.get(f"{served.url}/locations/o2p/jobs/{job}")
    _text_appears(d, "Materialize all")
    time.sleep(2)   # the page re-renders once its data arrives
    d.find_element(By.XPATH, "//button[contains(., 'Materialize all')]").click()
    dialog = d.find_element(By.CSS_SELECTOR, ".bp5-dialog")
    box = dialog.find_element(By.CSS_SELECTOR, "input[type=text]")
    box.send_keys(key, Keys.ENTER)
    _text_appears(d, "Launch 1 run")
    _shot(d, f"launch-{job}-{key}")
    dialog.find_element(By.XPATH, ".//button[contains(., 'Launch 1 run')]").click()


def test_the_ui_operates_the_pipeline(served):
    from selenium.webdriver.common.by import By

    with browser() as d:
        # the asset graph loads, with every layer, and no error
        d.get(f"{served.url}/asset-groups")
        for group in ("landing", "attribution", "staging", "intermediate", "marts", "settlement", "payouts"):
            _text_appears(d, group)
        body = d.find_element(By.TAG_NAME, "body").text
        assert "Error" not in body and "went wrong" not in body, body[:2000]
        _shot(d, "01-asset-graph")

        # the sensors and the release schedule are running
        d.get(f"{served.url}/automation")
        _text_appears(d, "release_schedule")
        time.sleep(2)
        for name in ("landing_sensor", "reference_sensor", "commission_after_attribution", "release_schedule",
                     "release_backlog", "capture_health_sensor", "alert_on_failure"):
            row = d.find_element(By.XPATH, f"//*[text()='{name}']/ancestor::*[count(.//input[@type='checkbox'])=2][1]")
            switch = row.find_elements(By.CSS_SELECTOR, "input[type=checkbox]")[1]
            assert switch.is_selected(), f"{name} is not running"
        _shot(d, "02-automation")

        # one attribution day re-materialized alone from the UI: its gates pass
        before = {r["runId"] for r in _runs(served.port)}
        _launch_partition(d, served, "attribution_job", "2026-10-15")
        run = served.wait_run(lambda r: r["runId"] not in before and r["jobName"] == "attribution_job",
                              "the attribution run of 2026-10-15 launched from the UI")
        assert run["tags"].get("dagster/partition") == "2026-10-15", run["tags"]
        checks = _check_results(served.port, run["runId"])
        assert checks["gx_landing"] is True and checks["gx_click_validity"] is True and checks["gx_attribution"] is True, checks
        d.get(f"{served.url}/runs/{run['runId']}")
        _text_appears(d, "gx_landing")
        _shot(d, "03-one-day-rerun")

        # the release of an ended month, launched from the UI; its materialization names the folder
        before = {r["runId"] for r in _runs(served.port)}
        _launch_partition(d, served, "release_job", "2026-10")
        served.wait_run(lambda r: r["runId"] not in before and r["jobName"] == "release_job",
                        "the release of 2026-10 launched from the UI")
        folder = _only_batch_folder(served.home, "2026-10")
        d.get(f"{served.url}/assets/payouts/payout_batch")
        _text_appears(d, folder.name, timeout=60)
        _shot(d, "04-release-payout-folder")
        # nothing but the webserver was asked for anything
        assert _hosts(d) <= {"127.0.0.1"}, _hosts(d)


def _check_results(port: int, run_id: str) -> dict[str, bool]:
    q = ('{ logsForRun(runId: "RUN") { ... on EventConnection { events { __typename '
         '... on AssetCheckEvaluationEvent { evaluation { checkName success } } } } } }').replace("RUN", run_id)
    events = _graphql(port, q)["logsForRun"]["events"]
    return {e["evaluation"]["checkName"]: e["evaluation"]["success"] for e in events
            if e["__typename"] == "AssetCheckEvaluationEvent"}


def _only_batch_folder(home: Path, period: str) -> Path:
    [folder] = [p for p in (home / "payouts" / period).iterdir() if p.is_dir() and not p.name.startswith(".")]
    return folder


# ---- the same world, three ways -----------------------------------------------------------

def _snapshot(home: Path, period: str) -> dict[str, str]:
    """Every warehouse table as sorted rows (Parquet by Spark, DuckDB by dbt and settlement),
    and the payout files byte for byte, each as a digest."""
    import duckdb

    out: dict[str, str] = {}
    wh = home / "warehouse"
    with duckdb.connect() as con:
        for table in ("clicks_validated", "attribution"):
            rows = con.execute(f"select * exclude (config_hash) from read_parquet('{wh / table}/event_date=*/*.parquet', "
                               "hive_partitioning = true) order by all" if table == "attribution" else
                               f"select * from read_parquet('{wh / table}/event_date=*/*.parquet', "
                               "hive_partitioning = true) order by all").fetchall()
            out[f"warehouse/{table}"] = hashlib.sha256(repr(rows).encode()).hexdigest()
    with duckdb.connect(str(wh / "o2p.duckdb"), read_only=True) as con:
        tables = con.execute("select table_schema, table_name from information_schema.tables "
                             "where table_schema in ('marts', 'settlement') and table_type = 'BASE TABLE' "
                             "order by 1, 2").fetchall()
        assert ("marts", "fct_commission_entitlements") in tables, tables
        for schema, name in tables:
            rows = con.execute(f"select * from {schema}.{name} order by all").fetchall()
            out[f"{schema}.{name}"] = hashlib.sha256(repr(rows).encode()).hexdigest()
    folder = _only_batch_folder(home, period)
    for f in sorted(folder.iterdir()):
        out[f"payouts/{f.name}"] = hashlib.sha256(f.read_bytes()).hexdigest()
    out["batch_id"] = folder.name
    return out


def _fresh_home(served, tmp: Path) -> tuple[Path, dict]:
    home = tmp / "home"
    shutil.copytree(served.home / "landing", home / "landing")
    env = {**served.env, "O2P_HOME": str(home)}
    return home, env


def test_the_same_world_three_ways_gives_the_same_tables_and_files(served, tmp_path, monkeypatch):
    # (b) the automation of `o2p serve` until idle (and the UI's re-run of one day, and the release)
    served.wait_run(lambda r: r["jobName"] == "release_job", "the release (test above)", timeout=600)
    automated = _snapshot(served.home, "2026-10")

    # (a) `o2p run` and `o2p payouts release` (the commands, in this process: the session's Spark)
    home_a, env_a = _fresh_home(served, tmp_path / "a")
    own = {k: env_a[k] for k in ("O2P_CONFIG", "O2P_HOME", "O2P_USER")}
    o2p_here("run", env=own, unset=("DAGSTER_HOME",))
    o2p_here("payouts", "release", "--period", "2026-10", env=own, unset=("DAGSTER_HOME",))
    by_cli = _snapshot(home_a, "2026-10")
    # the release after `o2p run` reused its build (pipelines/lib/builds.py), where the automated
    # one built: the tables and files below must not tell them apart
    adopted = [json.loads(f.read_text()) for f in (home_a / "quality" / "2026-10").glob("*/commission.json")]
    assert [g.get("reused_from_run") is not None for g in adopted].count(True) == 1, adopted

    # (c) every landed day alone, in random order, then each month, then the release
    from o2p import cli
    from o2p.layout import landed_days

    home_c, env_c = _fresh_home(served, tmp_path / "c")
    for key in ("O2P_HOME", "O2P_CONFIG", "O2P_USER"):
        monkeypatch.setenv(key, env_c[key])
    monkeypatch.setenv("DAGSTER_HOME", str(home_c / "dagster"))
    cfg = load_config(env_c["O2P_CONFIG"], home=home_c)
    days = landed_days(cfg.landing_path)
    seed = random.randrange(1 << 30)
    random.Random(seed).shuffle(days)
    print(f"(c) days in the order {days} (seed {seed})")
    cli._execute(cfg, "reference_job")
    for day in days:
        cli._execute(cfg, "attribution_job", partition_range=(day, day))
    for month in sorted({d[:7] for d in days}, reverse=True):
        cli._execute(cfg, "commission_job", partition=month)
    cli.release_period(cfg, "2026-10")
    one_by_one = _snapshot(home_c, "2026-10")

    assert by_cli == automated, {k: (by_cli.get(k), automated.get(k)) for k in by_cli.keys() | automated.keys()
                                  if by_cli.get(k) != automated.get(k)}
    assert one_by_one == automated, (seed, {k: (one_by_one.get(k), automated.get(k))
                                            for k in one_by_one.keys() | automated.keys()
                                            if one_by_one.get(k) != automated.get(k)})
