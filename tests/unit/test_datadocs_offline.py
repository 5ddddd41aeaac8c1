"""Data Docs that work offline and call nobody (issue #17 item 9): the page rewrite on a small
GX-like page at two depths, its idempotence, the vendoring (download once, sha512 checked, a
clear error) on a tiny fake package, and the runner's never-failing, warn-once wrapper.
Pure and fast: no GX, no network (the registry is replaced by a function)."""

import base64
import hashlib
import importlib.util
import io
import logging
import re
import tarfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from expectations import datadocs, runner, vendor

CDN = vendor.cdn_map()

PAGE = """<!DOCTYPE html>
<html>
  <head>
    <title>Data documentation compiled by Great Expectations</title>
    <link rel="stylesheet" href="https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css">
    <link rel="stylesheet" href="https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css"/>
    <link rel="stylesheet" href="https://cdn.example.org/new-in-gx-2.css">
    <style>
@media (prefers-color-scheme: dark) {
  .navbar-brand a {
    background: url('https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/full_logo_dark.png') 0 0 no-repeat;
  }
}</style>
<script src="https://cdn.jsdelivr.net/npm/vega@5"></script>
<link rel="stylesheet" href="https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css">
<script src="https://code.jquery.com/jquery-3.7.1.min.js"></script>
<script src="https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js" integrity="sha384-JjSmVgyd0p3pXB1rRibZUAYoIIy6OrQ6VrjIEaFf/nJGzIxFDsf4x0xIM+B07jRM" crossorigin="anonymous"></script>
<script src="https://cdn.example.org/new-in-gx-2.js"></script>
<link rel="shortcut icon" href="../../../static/images/favicon.ico" type="image/x-icon"/>
  </head>
  <body>
<nav class="navbar">
  <div class="float-left navbar-brand m-0 h-100">
    <a href="../../../../index.html">
      <img
        class="NO-CACHE"
        src="https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png?d=20261202T002529.516303Z&dataContextId=535bc310-9c3c-4d58-8ade-6da5ea389cc7"
        alt="Great Expectations"
        style="width: auto; height: 50px"
      />
    </a>
  </div>
</nav>
<p>Built by <a href="https://greatexpectations.io">Great Expectations</a>.
   <a href="https://docs.greatexpectations.io/docs/guides/x" class="btn btn-primary m-2" rel="noopener noreferrer" target="_blank">How to</a>
   <a href="http://127.0.0.1:3000/runs">the run in Dagster</a>
   <a href="#section-1">section 1</a></p>
<div style="background-image: url(https://tracker.example.com/p.gif)">x</div>
<script>var spec = {"$schema": "https://vega.github.io/schema/vega-lite/v5.json"}; // data, not a fetch
</script>
<footer>
  <p>Stay current on everything GX with our newsletter <a href="https://greatexpectations.io/newsletter?utm_source=datadocs&utm_medium=product">Subscribe</a></p>
</footer>
  </body>
</html>
"""


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []   # (tag, attr, value)
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        for k, v in attrs:
            if k in datadocs.URL_ATTRS and v is not None:
                self.refs.append((tag, k, v))


def _refs(html: str) -> _Refs:
    p = _Refs()
    p.feed(html)
    return p


@pytest.mark.parametrize("root", ["", "../../../../"])
def test_page_is_rewritten_to_vendored_files_for_its_depth(root):
    res = datadocs.rewrite_page(PAGE, root)
    out = res.html
    parsed = _refs(out)
    # every CDN file of the sample points at its vendored copy, relative to this page's depth
    for url in re.findall(r'(?:src|href)="(https://[^"]+)"', PAGE):
        if url in CDN:
            assert url not in out
            assert f'"{root}static/vendor/{CDN[url]}"' in out
    assert res.vendored == 6
    # no src/href (or any fetching attribute) leaves the machine, except loopback
    for tag, attr, value in parsed.refs:
        if value.lower().startswith(("http://", "https://", "//")):
            assert value.startswith("http://127.0.0.1"), (tag, attr, value)
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", out), "a CSS url() still fetches remotely"
    # the tracking logo is gone (with the data context id); a plain title instead
    assert "dataContextId" not in out and "logo-long.png" not in out
    assert not any(t == "img" for t, _ in parsed.tags)
    assert datadocs.TITLE in out
    # SRI attributes go with the CDN (Chromium refuses crossorigin requests to file:// URLs)
    assert "integrity=" not in out and "crossorigin=" not in out
    # GX's favicon is one folder short on validation pages: aimed at the site's static folder
    assert f'href="{root}static/images/favicon.ico"' in out
    # external links stay as text, not links; the newsletter footer is ours
    assert ">Great Expectations</a>" in out and "newsletter" not in out and "utm_" not in out
    assert 'href="#section-1"' in out and 'href="http://127.0.0.1:3000/runs"' in out
    assert 'href="../../../../index.html"' in out          # page links untouched
    assert "greatexpectations.io" in " ".join(res.unlinked)
    # what vendor.PINS lacks is dropped and reported, never fetched
    assert set(res.unexpected) == {"cdn.example.org/new-in-gx-2.css", "cdn.example.org/new-in-gx-2.js",
                                   "tracker.example.com/p.gif"}
    assert "https://vega.github.io/schema" in out           # script data is not a fetch: untouched
    assert out.count(datadocs.MARK) == 1


@pytest.mark.parametrize("root", ["", "../../../../"])
def test_rewrite_is_idempotent(root):
    once = datadocs.rewrite_page(PAGE, root)
    twice = datadocs.rewrite_page(once.html, root)
    assert twice.html == once.html
    assert twice.vendored == 0 and not twice.dropped and not twice.unlinked


def test_page_root_follows_the_real_depth(tmp_path):
    site = tmp_path / "local_site"
    assert datadocs.page_root(site, site / "index.html") == ""
    assert datadocs.page_root(site, site / "expectations" / "commission.html") == "../"
    page = site / "validations" / "commission" / "__none__" / "20260101T000000Z" / "o2p-commission.html"
    assert datadocs.page_root(site, page) == "../../../../"


def test_every_cdn_url_of_the_installed_gx_templates_is_pinned():
    """A GX upgrade that loads a new CDN file fails here, not silently in a browser."""
    spec = importlib.util.find_spec("great_expectations")     # locates, does not import, GX
    templates = Path(spec.origin).parent / "render" / "view" / "templates"
    loaded = set()
    for j2 in templates.glob("*.j2"):
        for tag in re.findall(r"<(?:script|link)\b[^>]*>", j2.read_text()):
            loaded.update(re.findall(r'(?:src|href)="(https?://[^"{]+)"', tag))
    assert loaded, templates
    assert loaded <= set(CDN), sorted(loaded - set(CDN))


# ---- vendoring, on a tiny fake package ----------------------------------------------------------

def _tgz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _sri(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


@pytest.fixture
def fake_registry(monkeypatch):
    tgz = _tgz({"dist/x.min.js": b"window.x=1", "dist/x.css": b".x{background:url(../fonts/f.woff2)}",
                "fonts/f.woff2": b"\0font", "README.md": b"not needed"})
    pin = vendor.Pin("@fake/x", "1.2.3", _sri(tgz),
                     {"https://cdn.example.net/x@1.2.3/x.min.js": "dist/x.min.js",
                      "https://cdn.example.net/x@1.2.3/x.css": "dist/x.css"}, extra=("fonts/",))
    calls = []

    def download(p, timeout=vendor.TIMEOUT_S):
        calls.append(p.tarball_url)
        return tgz
    monkeypatch.setattr(vendor, "PINS", (pin,))
    monkeypatch.setattr(vendor, "_download", download)
    return pin, calls


def test_vendoring_downloads_once_checks_sha512_and_extracts_only_what_is_needed(tmp_path, fake_registry):
    pin, calls = fake_registry
    assert pin.tarball_url == "https://registry.npmjs.org/@fake/x/-/x-1.2.3.tgz"
    cache = tmp_path / "cache"
    a = vendor.ensure_vendored(tmp_path / "a", cache=cache)
    assert calls == [pin.tarball_url] and (cache / "x-1.2.3.tgz").is_file()
    got = sorted(p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file())
    assert got == [vendor.STAMP, "x-1.2.3/dist/x.css", "x-1.2.3/dist/x.min.js", "x-1.2.3/fonts/f.woff2"]
    vendor.ensure_vendored(tmp_path / "b", cache=cache, offline=True)   # from the cache: no network
    vendor.ensure_vendored(tmp_path / "a", cache=cache, offline=True)   # already there: stamp
    assert calls == [pin.tarball_url]


def test_a_tarball_that_fails_its_integrity_check_is_a_clear_error(tmp_path, fake_registry, monkeypatch):
    pin, _ = fake_registry
    monkeypatch.setattr(vendor, "_download", lambda p, timeout=0: b"tampered")
    with pytest.raises(vendor.VendorError) as e:
        vendor.ensure_vendored(tmp_path / "v", cache=tmp_path / "cache")
    msg = str(e.value)
    assert "@fake/x@1.2.3" in msg and pin.tarball_url in msg and "integrity check failed" in msg
    assert not (tmp_path / "cache" / "x-1.2.3.tgz").exists()            # nothing bad is cached


def test_no_cache_and_no_network_is_a_clear_error(tmp_path, fake_registry, monkeypatch):
    pin, _ = fake_registry

    def down(p, timeout=0):
        raise vendor.VendorError(p, "download failed: [Errno -3] Temporary failure in name resolution")
    monkeypatch.setattr(vendor, "_download", down)
    with pytest.raises(vendor.VendorError, match=r"@fake/x@1\.2\.3 \(https://registry\.npmjs\.org/.*name resolution"):
        vendor.ensure_vendored(tmp_path / "v", cache=tmp_path / "cache")
    with pytest.raises(vendor.VendorError, match="python -m expectations.vendor"):
        vendor.ensure_vendored(tmp_path / "v", cache=tmp_path / "cache", offline=True)


def test_make_offline_rewrites_every_page_of_a_site_once(tmp_path, fake_registry):
    site = tmp_path / "local_site"
    page = '<html><head><script src="https://cdn.example.net/x@1.2.3/x.min.js"></script></head><body></body></html>'
    deep = site / "validations" / "s" / "__none__" / "20260101T000000Z" / "o2p-s.html"
    deep.parent.mkdir(parents=True)
    deep.write_text(page)
    (site / "index.html").write_text(page)
    half = site / "expectations" / "s.html"        # GX still writing it (another suite's run)
    half.parent.mkdir()
    half.write_text(page[:60])
    report = datadocs.make_offline(site, cache=tmp_path / "cache")
    assert (report.pages, report.rewritten) == (3, 2)
    assert half.read_text() == page[:60]
    assert '<script src="static/vendor/x-1.2.3/dist/x.min.js">' in (site / "index.html").read_text()
    assert '<script src="../../../../static/vendor/x-1.2.3/dist/x.min.js">' in deep.read_text()
    assert (site / "static" / "vendor" / "x-1.2.3" / "dist" / "x.min.js").is_file()
    before = deep.read_text()
    assert datadocs.make_offline(site, cache=tmp_path / "cache", offline=True).rewritten == 0
    assert deep.read_text() == before


def test_the_runner_never_fails_on_docs_and_warns_once(tmp_path, monkeypatch, caplog):
    pin = vendor.Pin("jquery", "3.7.1", "sha512-x", {})

    def unavailable(site, **kw):
        raise vendor.VendorError(pin, "download failed: [Errno 101] Network is unreachable")
    monkeypatch.setattr(datadocs, "make_offline", unavailable)
    monkeypatch.setattr(runner, "_docs_warned", set())
    with caplog.at_level(logging.WARNING, logger="o2p.datadocs"):
        assert runner.offline_docs(tmp_path) is False
        assert runner.offline_docs(tmp_path) is False
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "\n" not in lines[0]
    assert "python -m expectations.vendor" in lines[0] and "jquery@3.7.1" in lines[0]
