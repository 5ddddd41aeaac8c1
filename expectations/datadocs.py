"""Make the GX Data Docs site work offline and call nobody.

GX 1.24 writes every page with its CSS/JS from public CDNs, a logo `<img>` fetched from an S3
bucket with the data context id in its query string, a dark-mode CSS background from the same
bucket, and links to greatexpectations.io (newsletter, docs). `make_offline(site)` copies the
pinned files (expectations/vendor.py) into `<site>/static/vendor/` and rewrites each HTML page:

- a CDN `src`/`href` becomes the relative path to its vendored copy, for that page's depth
  (index.html: `static/vendor/…`; a validation page, 4+ folders down: `../../../../static/vendor/…`);
  `integrity`/`crossorigin` go (a crossorigin request for a file:// URL is refused by Chromium;
  the tarball's sha512 was checked when it was vendored);
- a relative `…/static/…` URL is re-aimed at the site's one static folder (GX gets the favicon of
  validation pages one folder short);
- the logo `<img>` becomes the plain title "o2p data quality"; the GX newsletter footer becomes a
  one-line o2p footer; any other external link loses its `href` (the text stays, the address
  is named in its `title`, without a scheme);
- anything else external that a browser would fetch (an unknown `<script src>`, `<link href>`,
  `<img src>`, a CSS `url(…)` in a `<style>` or style attribute) is dropped, so a GX upgrade
  that adds a CDN file degrades the page but never makes it call out; `make_offline` reports it.

It is idempotent: a processed page is marked (`<meta name="o2p-datadocs" …>`) and running the
rewrite again on it changes nothing.

Why post-processing and not GX's own template mechanism: the site builder's
`custom_views_directory` cannot replace GX's templates — `DefaultJinjaView` builds a Jinja
`ChoiceLoader` with GX's package templates *first*, so a custom `page.j2` is never chosen; it
only adds new template names. Overriding would take a custom view class configured per site
section in every home's great_expectations.yml, plus forked copies of page.j2, index_page.j2,
js_script_imports.j2, top_navbar.j2, cloud-footer.j2 and the inlined default styles, whose
relative paths GX computes from the renderer type and the suite name's dot count (and gets wrong
for the favicon). Those forks would silently drift from GX on every upgrade, and GX's
`copy_static_assets` only copies its own package folder, so the vendored files would need a
post-build step anyway. Rewriting the pages GX wrote needs only the output: the URLs are
matched exactly (vendor.PINS lists each CDN URL of GX 1.24's templates), tags are located with
the standard library's HTML parser (not a regex over markup), depth comes from the file's real
place in the site, and whatever is unknown fails safe (dropped, reported) rather than calling out.
"""

from __future__ import annotations

import html as htmllib
import os
import re
import tempfile
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

from expectations import vendor

MARK = '<meta name="o2p-datadocs" content="offline">'
TITLE = "o2p data quality"
VENDOR_DIR = ("static", "vendor")
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}
URL_ATTRS = ("src", "href", "srcset", "poster", "data", "action", "formaction", "background", "manifest")

_TITLE_HTML = (f'<span class="o2p-docs-title" style="display:inline-block;line-height:50px;'
               f'font-size:1.4rem;font-weight:600;white-space:nowrap">{TITLE}</span>')
_FOOTER_HTML = ('<footer class="o2p-docs-footer"><p>o2p data quality: Data Docs rendered by Great '
                'Expectations, served from this folder only (no CDN, no tracking).</p></footer>')
# GX's cloud-footer.j2 (a newsletter link with utm tags)
_GX_FOOTER = re.compile(r"<footer>\s*<p>\s*Stay current on everything GX with our newsletter.*?</footer>",
                        re.S | re.I)
_CSS_URL = re.compile(r"""url\(\s*(['"]?)\s*((?:https?:)?//[^)'"\s]+)\s*\1\s*\)""", re.I)
GX_ASSETS = "great-expectations-web-assets."     # the S3 bucket of GX's logos (tracking pixel)
_STATIC = re.compile(r"^(?:\./)?(?:\.\./)*static/")


def is_external(url: str | None) -> bool:
    """Would a browser go to the network for this URL (http/https/protocol-relative, not loopback)?"""
    if not url:
        return False
    u = url.strip()
    low = u.lower()
    if not (low.startswith(("http://", "https://", "//"))):
        return False
    try:
        host = urlsplit(u if not low.startswith("//") else "http:" + u).hostname or ""
    except ValueError:
        return True
    return host not in LOCAL_HOSTS


def _plain(url: str) -> str:
    """An address as plain text: no scheme, no query (the query may carry ids)."""
    p = urlsplit(url.strip() if not url.strip().startswith("//") else "http:" + url.strip())
    return f"{p.hostname or ''}{p.path}".rstrip("/")


@dataclass
class Rewrite:
    html: str
    vendored: int = 0                                      # CDN references now local
    dropped: list[str] = field(default_factory=list)       # unknown external fetches removed
    unlinked: list[str] = field(default_factory=list)      # external links made plain text

    @property
    def unexpected(self) -> list[str]:
        """Dropped fetches that are not GX's own logo images: a GX upgrade's new CDN file."""
        return [d for d in self.dropped if not d.startswith(GX_ASSETS)]


class _Tags(HTMLParser):
    """Start tags with their exact source span, and the content spans of <style> elements."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.text = text
        self.line_starts = [0]
        for m in re.finditer("\n", text):
            self.line_starts.append(m.end())
        self.tags: list[tuple[int, int, str, list[tuple[str, str | None]]]] = []
        self.styles: list[tuple[int, int]] = []
        self._style_at: int | None = None

    def _offset(self) -> int:
        line, col = self.getpos()
        return self.line_starts[line - 1] + col

    def handle_starttag(self, tag, attrs):
        start = self._offset()
        raw = self.get_starttag_text() or ""
        if self.text.startswith(raw, start):
            self.tags.append((start, start + len(raw), tag, attrs))
            if tag == "style":
                self._style_at = start + len(raw)

    def handle_endtag(self, tag):
        if tag == "style" and self._style_at is not None:
            self.styles.append((self._style_at, self._offset()))
            self._style_at = None


def _tag(tag: str, attrs: list[tuple[str, str | None]], selfclose: bool) -> str:
    parts = [tag] + [k if v is None else f'{k}="{htmllib.escape(v, quote=True)}"' for k, v in attrs]
    return "<" + " ".join(parts) + (" />" if selfclose else ">")


def _css(text: str, res: Rewrite) -> str:
    def repl(m):
        res.dropped.append(_plain(m.group(2)))
        return "none"
    return _CSS_URL.sub(lambda m: repl(m) if is_external(m.group(2)) else m.group(0), text)


def rewrite_page(text: str, root: str, cdn: dict[str, str] | None = None) -> Rewrite:
    """Rewrite one page. `root` is the relative path from the page's folder to the site root
    ('' for index.html, '../../../../' for validations/<suite>/<run>/<time>/<page>.html);
    `cdn` maps a CDN URL to its path under static/vendor/ (default: vendor.cdn_map())."""
    cdn = vendor.cdn_map() if cdn is None else cdn
    res = Rewrite(text)
    text = _GX_FOOTER.sub(_FOOTER_HTML, text)
    parser = _Tags(text)
    parser.feed(text)
    parser.close()
    edits: list[tuple[int, int, str]] = []
    for s, e in parser.styles:
        new = _css(text[s:e], res)
        if new != text[s:e]:
            edits.append((s, e, new))
    vendor_prefix = root + "/".join(VENDOR_DIR) + "/"
    for start, end, tag, attrs in parser.tags:
        raw = text[start:end]
        selfclose = raw.rstrip().endswith("/>")
        new_attrs: list[tuple[str, str | None]] = []
        changed = replaced = False
        for k, v in attrs:
            if k in ("src", "href") and v is not None and v.strip() in cdn:
                new_attrs.append((k, vendor_prefix + cdn[v.strip()]))
                res.vendored += 1
                changed = True
            elif k in ("src", "href") and v is not None and _STATIC.match(v) and \
                    (fixed := root + "static/" + _STATIC.sub("", v, count=1)) != v:
                new_attrs.append((k, fixed))
                changed = True
            elif k in URL_ATTRS and is_external(v):
                if tag == "img" and k == "src":
                    logo = "great-expectations" in (v or "") or (dict(attrs).get("alt") or "").startswith("Great Expectations")
                    alt = htmllib.escape(dict(attrs).get("alt") or "")
                    edits.append((start, end, _TITLE_HTML if logo else f'<span class="o2p-offline-img">{alt}</span>'))
                    res.dropped.append(_plain(v))
                    replaced = True
                    break
                if tag == "link":
                    edits.append((start, end, f"<!-- o2p: {htmllib.escape(_plain(v))} is not loaded offline -->"))
                    res.dropped.append(_plain(v))
                    replaced = True
                    break
                if tag == "a" and k == "href":
                    res.unlinked.append(_plain(v))
                    new_attrs.append(("title", f"{_plain(v)} (external site, not linked offline)"))
                elif tag == "script" and k == "src":
                    res.dropped.append(_plain(v))
                    new_attrs.append(("type", "text/plain"))
                    new_attrs.append(("data-o2p-dropped", _plain(v)))
                else:
                    res.dropped.append(_plain(v))
                changed = True
            elif k == "style" and v and _CSS_URL.search(v):
                css = _css(v, res)
                new_attrs.append((k, css))
                changed = changed or css != v
            else:
                new_attrs.append((k, v))
        if replaced:
            continue
        if changed:
            local_assets = any(k in ("src", "href") and v and v.startswith(vendor_prefix) for k, v in new_attrs)
            if local_assets:
                new_attrs = [(k, v) for k, v in new_attrs if k not in ("integrity", "crossorigin")]
            if tag == "a" and any(k == "title" and v and v.endswith("not linked offline)") for k, v in new_attrs):
                new_attrs = [(k, v) for k, v in new_attrs if k not in ("target", "rel")]
            edits.append((start, end, _tag(tag, new_attrs, selfclose)))
    for s, e, new in sorted(edits, reverse=True):
        text = text[:s] + new + text[e:]
    if MARK not in text:
        head = re.search(r"<head(?:\s[^>]*)?>", text, re.I)
        text = text[:head.end()] + "\n    " + MARK + text[head.end():] if head else MARK + "\n" + text
    res.html = text
    return res


def page_root(site: Path, page: Path) -> str:
    """The relative path from `page`'s folder up to the site root ('' or '../' repeated)."""
    return "../" * (len(page.relative_to(site).parts) - 1)


@dataclass
class SiteReport:
    pages: int = 0           # HTML pages in the site
    rewritten: int = 0       # rewritten now (the others were already offline)
    unexpected: set[str] = field(default_factory=set)   # external fetches dropped that vendor.PINS lacks


def _write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def make_offline(site: Path, *, cache: Path | None = None, offline: bool = False,
                 timeout: float = vendor.TIMEOUT_S) -> SiteReport:
    """Vendor the pinned files into `<site>/static/vendor/` and rewrite every HTML page of the
    site that is not yet offline. Raises vendor.VendorError (and changes no page) when the
    files cannot be had."""
    site = Path(site)
    vendor.ensure_vendored(site.joinpath(*VENDOR_DIR), cache=cache, offline=offline, timeout=timeout)
    cdn = vendor.cdn_map()
    report = SiteReport()
    for page in sorted(site.rglob("*.html")):
        if page.is_relative_to(site.joinpath(*VENDOR_DIR)):
            continue
        report.pages += 1
        try:
            with page.open("r", encoding="utf-8") as f:
                if MARK in f.read(2048):
                    continue
            before = _stat(page)
            text = page.read_text(encoding="utf-8")
        except FileNotFoundError:     # pruned meanwhile
            continue
        if not text.rstrip().lower().endswith("</html>"):
            continue                  # being written by GX (another suite's run): that run does it
        res = rewrite_page(text, page_root(site, page), cdn)
        report.unexpected.update(res.unexpected)
        if res.html != text and _stat(page) == before:     # not rewritten by GX meanwhile
            _write(page, res.html)
            report.rewritten += 1
    return report


def _stat(path: Path) -> tuple | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns
