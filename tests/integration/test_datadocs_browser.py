"""The Data Docs of a failed gate, opened in a browser that cannot reach any host (issue #17
item 9): a real GX suite fails on a negative commission, `run_suite` builds the Data Docs and
makes them offline, and headless Debian Chromium — every host name mapped to nowhere — loads
the failed validation page and the index. Every request the pages make is a local file, the
result tables are rendered by bootstrap-table, Bootstrap's CSS and Font Awesome's font apply.
The screenshot is kept in tests/artifacts/datadocs-failed-validation.png.

Needs the pinned files in the vendor cache (`python -m expectations.vendor`; the install script
runs it) or the network to fetch them once; the browser itself never has a network."""

import contextlib
import json
import os
import re
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest

from expectations import datadocs, suites
from expectations.runner import docs_index, run_suite
from tests.conftest import REPO

pytestmark = pytest.mark.integration

ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
IDS = ["promoter_id", "order_id", "line_id", "role"]


@contextlib.contextmanager
def browser():
    chromium = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    driver = CHROMEDRIVER if Path(CHROMEDRIVER).exists() else shutil.which("chromedriver")
    if not (chromium and driver):
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium and chromium-driver are required in CI (./dev test installs them)")
        pytest.skip("chromium / chromedriver not installed (apt-get install chromium chromium-driver)")
    os.environ["SE_OFFLINE"] = "true"      # Selenium Manager must not download a driver or browser
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("selenium is required in CI (the dev extra)")
        pytest.skip("selenium is not installed (pip install selenium)")

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1600,1000",
              "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    d = webdriver.Chrome(service=Service(driver), options=opts)
    try:
        yield d
    finally:
        d.quit()


def _network(d) -> tuple[list[str], list[str]]:
    """(every URL the page requested, those whose loading failed) from the performance log."""
    urls, by_id, failed = [], {}, []
    for e in d.get_log("performance"):
        m = json.loads(e["message"])["message"]
        p = m.get("params", {})
        if m["method"] == "Network.requestWillBeSent":
            urls.append(p["request"]["url"])
            by_id[p["requestId"]] = p["request"]["url"]
        elif m["method"] == "Network.loadingFailed" and not p.get("canceled"):
            failed.append(f"{by_id.get(p['requestId'], p['requestId'])}: {p.get('errorText')}")
    return urls, failed


def _wait(what: str, predicate, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while not (got := predicate()):
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.25)
    return got


def _open(d, page: Path):
    d.get_log("performance")                      # drop what came before
    d.get(page.as_uri())
    _wait(f"{page.name} loaded", lambda: d.execute_script("return document.readyState") == "complete")
    d.execute_script("return document.fonts.ready.then(() => true)")


def _assert_local_only(d, page: Path):
    urls, failed = _network(d)
    assert urls, f"no request logged for {page}"
    remote = [u for u in urls if not u.startswith(("file://", "data:"))]
    assert not remote, f"{page.name} asked the network for: {remote}"
    assert not failed, f"{page.name}: local files missing: {failed}"
    return urls


def _assert_bootstrap_applied(d):
    # Bootstrap 4.3.1's reboot and .table rules; unstyled Chromium: Times, separate, no padding
    style = d.execute_script("""
        const t = document.querySelector('table.table'), c = document.querySelector('.container-fluid');
        return {font: getComputedStyle(document.body).fontFamily,
                collapse: getComputedStyle(t).borderCollapse,
                pad: getComputedStyle(c).paddingLeft};""")
    assert "-apple-system" in style["font"], style
    assert style["collapse"] == "collapse", style
    assert style["pad"] == "48px", style                      # .pl-5 = 3rem


def test_failed_validation_page_renders_offline_in_a_browser_with_no_network(tmp_path):
    home = tmp_path / "home"
    df = pd.DataFrame({
        "promoter_id": ["PA", "PA", "PB"], "order_id": ["O1", "O2", "O3"], "line_id": ["L1", "L1", "L1"],
        "role": ["direct", "override", "direct"], "rate_e4": [1000, 200, 1000], "paid_fen": [100, 100, 300],
        "net_fen": [100, 100, 300], "entitled_fen": [10, -5, 30], "currency": ["CNY", "CNY", "CNY"]})
    result = run_suite("commission", df, suites.commission, home=home, id_columns=IDS)
    assert not result.success and not result.broken, result.describe()
    assert {f["expectation"] for f in result.failures} == {"expect_column_values_to_be_between"}

    site = docs_index(home).parent
    pages = sorted((site / "validations" / "commission").rglob("*.html"))
    assert len(pages) == 1, pages
    page = pages[0]
    assert len(page.relative_to(site).parts) >= 5        # validations/commission/<run>/<time>/<page>
    head = page.read_text()[:2048]
    assert datadocs.MARK in head, (
        "the Data Docs were left as GX wrote them: the pinned files are not cached and could not be "
        "downloaded (run `python -m expectations.vendor` once with network access)")

    with browser() as d:
        _open(d, page)
        urls = _assert_local_only(d, page)
        assert any(u.endswith("/static/vendor/bootstrap-4.3.1/dist/css/bootstrap.min.css") for u in urls)
        assert any(u.endswith("/static/vendor/bootstrap-table-1.19.1/dist/bootstrap-table.min.js") for u in urls)

        # the result tables: bootstrap-table wrapped them (its own DOM) and rendered their rows
        tables = _wait("bootstrap-table rendered the result tables", lambda: d.execute_script("""
            return [...document.querySelectorAll('.bootstrap-table .fixed-table-body table[data-toggle="table"]')]
                .filter(t => /^section-[0-9]+-content-block-2-body$/.test(t.id))
                .map(t => ({id: t.id, rows: t.querySelectorAll(':scope > tbody > tr[data-index]').length,
                            text: t.innerText}));"""))
        in_html = len(re.findall(r'id="section-[0-9]+-content-block-2-body"\s+class="table', page.read_text()))
        assert len(tables) == in_html >= 2, (in_html, [t["id"] for t in tables])   # every one wrapped
        assert all(t["rows"] > 0 for t in tables), [(t["id"], t["rows"]) for t in tables]
        overview = " ".join(tables[0]["text"].split())
        assert "Unsuccessful Expectations 1" in overview, overview
        bad = [" ".join(t["text"].split()) for t in tables if "unexpected values found" in t["text"]]
        assert len(bad) == 1 and "greater than or equal to 0" in bad[0] and "-5" in bad[0], bad
        assert d.execute_script("return typeof jQuery === 'function' && typeof jQuery.fn.bootstrapTable "
                                "=== 'function' && typeof vegaEmbed === 'function'")
        _assert_bootstrap_applied(d)
        assert d.execute_script("return document.fonts.check('900 16px \"Font Awesome 6 Free\"')")
        brand = d.execute_script("return document.querySelector('.navbar-brand').innerText")
        assert brand.strip() == datadocs.TITLE
        assert d.execute_script("return document.querySelectorAll('img').length") == 0
        assert d.execute_script("""return [...document.querySelectorAll('a[href]')]
            .map(a => a.href).filter(h => !h.startsWith('file:') && !h.startsWith('http://127.0.0.1'))""") == []
        ARTIFACTS.mkdir(parents=True, exist_ok=True)       # the whole page, failed expectation included
        d.set_window_size(1600, min(d.execute_script("return document.body.scrollHeight") + 150, 6000))
        d.save_screenshot(str(ARTIFACTS / "datadocs-failed-validation.png"))
        d.set_window_size(1600, 1000)

        # the index: its validation table is filled by bootstrap-table from inline data
        _open(d, site / "index.html")
        _assert_local_only(d, site / "index.html")
        rows = _wait("the index lists the failed validation", lambda: d.execute_script("""
            return [...document.querySelectorAll('.bootstrap-table tbody > tr[data-index]')].map(r => r.innerText)"""))
        assert any("commission" in r for r in rows), rows
        _assert_bootstrap_applied(d)
