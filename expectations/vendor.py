"""The CSS/JS the Great Expectations Data Docs load, pinned and kept on this machine.

GX 1.24 writes every Data Docs page with <link>/<script> tags to public CDNs (bootstrapcdn,
unpkg, jsdelivr, cdnjs, code.jquery.com). Offline the pages are bare and the result tables
stay empty. Here each of those files is pinned to the npm package that publishes it, at the
exact version the page asks for (or, for the unversioned `vega@5`, `vega-lite@5` and
`vega-embed@6`, the newest 5.x/6.x release when this was written), with the sha512 the npm
registry publishes for the tarball (`dist.integrity`).

`ensure_vendored(dest)` puts the needed files under `dest/<package>-<version>/…` (the
package's own layout, so Font Awesome's `all.min.css` finds its `../webfonts/`). Each tarball
is downloaded from registry.npmjs.org once, into a cache (`$O2P_VENDOR_CACHE`, else
`~/.cache/o2p/npm`), and checked against its pinned sha512 before anything is read from it.
When the cache holds every tarball no network is touched.

`python -m expectations.vendor` fills the cache (the install script calls it).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REGISTRY = "https://registry.npmjs.org"
TIMEOUT_S = 30


@dataclass(frozen=True)
class Pin:
    name: str                      # npm package name, e.g. "@fortawesome/fontawesome-free"
    version: str                   # exact
    integrity: str                 # the registry's dist.integrity of the tarball ("sha512-<base64>")
    cdn: dict[str, str]            # a URL GX's templates load -> the file in the package that it is
    extra: tuple[str, ...] = field(default=())   # folders/files the cdn files need (relative refs)

    @property
    def basename(self) -> str:
        return self.name.rsplit("/", 1)[-1]

    @property
    def folder(self) -> str:
        """The folder under the vendor dir: `<basename>-<version>` (no '@', no scope folder)."""
        return f"{self.basename}-{self.version}"

    @property
    def tarball_url(self) -> str:
        return f"{REGISTRY}/{self.name}/-/{self.basename}-{self.version}.tgz"

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys([*self.cdn.values(), *self.extra]))


# Every URL in great_expectations/render/view/templates/*.j2 (GX 1.24.1) that a page loads.
PINS: tuple[Pin, ...] = (
    Pin("bootstrap", "4.3.1",
        "sha512-rXqOmH1VilAt2DyPzluTi2blhk17bO7ef+zLLPlWvG494pDxcM234pJ8wTc/6R40UWizAIIMgxjvxZg5kmsbag==",
        {"https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": "dist/css/bootstrap.min.css",
         "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": "dist/js/bootstrap.min.js"}),
    Pin("@forevolve/bootstrap-dark", "1.1.0",
        "sha512-A3ucpEpxPoTVO490lZZCfjPXxv832l7mm1IxX3bXyxvgwnPGXDLyh7dWrphXKO8YBAu3EswbBEu3VSW8NRMW3A==",
        {"https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css":
             "dist/css/bootstrap-prefers-dark.css"}),
    Pin("bootstrap-datepicker", "1.9.0",
        "sha512-9rYYbaVOheGYxjOr/+bJCmRPihfy+LkLSg4fIFMT9Od8WwWB/MB50w0JO1eBgKUMbb7PFHQD5uAfI3ArAxZRXA==",
        {"https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css":
             "dist/css/bootstrap-datepicker.min.css",
         "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js":
             "dist/js/bootstrap-datepicker.min.js"}),
    # cdnjs "font-awesome/6.6.0" is the npm package @fortawesome/fontawesome-free 6.6.0
    Pin("@fortawesome/fontawesome-free", "6.6.0",
        "sha512-60G28ke/sXdtS9KZCpZSHHkCbdsOGEhIUGlwq6yhY74UpTiToIh8np7A8yphhM4BWsvNFtIvLpi4co+h9Mr9Ow==",
        {"https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": "css/all.min.css"},
        extra=("webfonts/",)),
    Pin("bootstrap-table", "1.19.1",
        "sha512-WvV+l1AI/C+zThaKmfHmi/IuayVNB0qdFyEhFx1jyZhO0oLtNJNANkCR3rvJf6Dkh72dsLElxpE/bzK9seEQLA==",
        {"https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css": "dist/bootstrap-table.min.css",
         "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js": "dist/bootstrap-table.min.js",
         "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js":
             "dist/extensions/filter-control/bootstrap-table-filter-control.min.js"}),
    # GX's pages ask for the filter-control CSS of 1.19.0 (page.j2 the plain, index_page.j2 the .min)
    Pin("bootstrap-table", "1.19.0",
        "sha512-L+USHm3X9FKocx/6yngGu12yF6r6s1Ntuc+hoIK2a2QQJjHw5kcySLiE2HY/9sEaSGAOfPbfQOtBH3uKkcpqEA==",
        {"https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css":
             "dist/extensions/filter-control/bootstrap-table-filter-control.css",
         "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css":
             "dist/extensions/filter-control/bootstrap-table-filter-control.min.css"}),
    Pin("jquery", "3.7.1",
        "sha512-m4avr8yL8kmFN8psrbFFFmB/If14iN5o9nw/NgnnM+kybDJpRsAynV2BsfpTYrTRysYUdADVD7CkUUizgkpLfg==",
        {"https://code.jquery.com/jquery-3.7.1.min.js": "dist/jquery.min.js"}),
    Pin("popper.js", "1.12.9",
        "sha512-s0EEi9xiSCdqz9lV4IiVH5yIZnDX/U1t0tCjB+0jXx9jW8lrR7kOpVupiUg175ogqVoudpDXHF1p6dKATCHMeg==",
        {"https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": "dist/umd/popper.min.js"}),
    # jsdelivr's `npm/<pkg>@<major>` serves the package's "jsdelivr" file: build/<pkg>.min.js
    Pin("vega", "5.33.1",
        "sha512-1fArfVDUqVbb5z8n+/nVQb+VNBzx8svY6CrsyTK4Ujm4yrd9I1auoKxBAPXLCavY1LcrbHUskQbGUP8gXOzyQw==",
        {"https://cdn.jsdelivr.net/npm/vega@5": "build/vega.min.js"}),
    Pin("vega-lite", "5.23.0",
        "sha512-l4J6+AWE3DIjvovEoHl2LdtCUkfm4zs8Xxx7INwZEAv+XVb6kR6vIN1gt3t2gN2gs/y4DYTs/RPoTeYAuEg6mA==",
        {"https://cdn.jsdelivr.net/npm/vega-lite@5": "build/vega-lite.min.js"}),
    Pin("vega-embed", "6.29.0",
        "sha512-PmlshTLtLFLgWtF/b23T1OwX53AugJ9RZ3qPE2c01VFAbgt3/GSNI/etzA/GzdrkceXFma+FDHNXUppKuM0U6Q==",
        {"https://cdn.jsdelivr.net/npm/vega-embed@6": "build/vega-embed.min.js"}),
)

STAMP = ".o2p-vendor.json"


class VendorError(RuntimeError):
    """A pinned package could not be had: names the package, the URL and what went wrong."""

    def __init__(self, pin: Pin, what: str, url: str | None = None):
        self.pin, self.what = pin, what
        super().__init__(f"vendored asset {pin.name}@{pin.version} ({url or pin.tarball_url}): {what}")


def cdn_map() -> dict[str, str]:
    """CDN URL -> its path under the vendor dir (posix, e.g. 'jquery-3.7.1/dist/jquery.min.js')."""
    return {url: f"{p.folder}/{path}" for p in PINS for url, path in p.cdn.items()}


def cache_dir() -> Path:
    env = os.environ.get("O2P_VENDOR_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "o2p" / "npm"


def _tarball_path(pin: Pin, cache: Path) -> Path:
    return cache / f"{pin.folder}.tgz"


def _check(pin: Pin, data: bytes, where: str) -> None:
    algo, _, want = pin.integrity.partition("-")
    got = base64.b64encode(hashlib.new(algo, data).digest()).decode()
    if got != want:
        raise VendorError(pin, f"integrity check failed for {where}: {algo} is {got}, pinned {want}")


def _download(pin: Pin, timeout: float = TIMEOUT_S) -> bytes:
    req = urllib.request.Request(pin.tarball_url, headers={"User-Agent": "o2p-vendor (+python urllib)"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:   # noqa: S310 (a fixed https URL)
            return r.read()
    except urllib.error.HTTPError as exc:
        raise VendorError(pin, f"download failed: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise VendorError(pin, f"download failed: {reason}") from exc


def tarball(pin: Pin, cache: Path | None = None, *, offline: bool = False,
            timeout: float = TIMEOUT_S) -> bytes:
    """The verified tarball of `pin`, from the cache, else downloaded once into it.
    A cached tarball that fails its check is dropped and fetched again (unless `offline`)."""
    cache = cache or cache_dir()
    path = _tarball_path(pin, cache)
    dropped = ""
    if path.is_file():
        data = path.read_bytes()
        try:
            _check(pin, data, str(path))
            return data
        except VendorError:
            if offline:
                raise
            path.unlink(missing_ok=True)
            dropped = f"the cached {path.name} failed its sha512 check and was dropped; "
    if offline:
        raise VendorError(pin, f"not in the cache {cache} (run: python -m expectations.vendor)")
    try:
        data = _download(pin, timeout)
    except VendorError as exc:
        raise VendorError(pin, dropped + exc.what) from exc
    _check(pin, data, "the downloaded tarball")
    cache.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache, prefix=f".{pin.folder}.", suffix=".part")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)   # atomic: a concurrent reader sees all of it or nothing
    return data


def _manifest() -> dict:
    return {p.folder: {"name": p.name, "version": p.version, "integrity": p.integrity, "files": list(p.files)}
            for p in PINS}


def is_vendored(dest: Path) -> bool:
    try:
        return json.loads((Path(dest) / STAMP).read_text()) == _manifest()
    except (OSError, ValueError):
        return False


def _extract(pin: Pin, data: bytes, dest: Path) -> None:
    wanted = pin.files
    found: set[str] = set()
    target = dest / pin.folder
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for m in tar.getmembers():
            if not m.isfile():
                continue
            _, _, rel = m.name.partition("/")    # npm tarballs hold one top folder ("package/")
            if not rel or ".." in Path(rel).parts or rel.startswith("/"):
                continue
            hit = next((w for w in wanted if rel == w or (w.endswith("/") and rel.startswith(w))), None)
            if hit is None:
                continue
            out = target / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(m)
            fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
            with os.fdopen(fd, "wb") as f:
                f.write(src.read())
            os.replace(tmp, out)
            found.add(hit)
    missing = [w for w in wanted if w not in found]
    if missing:
        raise VendorError(pin, f"the tarball has no {', '.join(missing)}")


def ensure_vendored(dest: Path, *, cache: Path | None = None, offline: bool = False,
                    timeout: float = TIMEOUT_S) -> Path:
    """`dest` holding every pinned file (`dest/<package>-<version>/<path>`); returns `dest`.

    Done once per dest (a stamp records what was put there). Tarballs come from the cache, and
    are downloaded into it only when missing (never when `offline`). Raises VendorError naming
    the package, the URL and what went wrong."""
    dest = Path(dest)
    if is_vendored(dest):
        return dest
    cache = cache or cache_dir()
    for pin in PINS:
        _extract(pin, tarball(pin, cache, offline=offline, timeout=timeout), dest)
    dest.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest, prefix=".stamp.", suffix=".part")
    with os.fdopen(fd, "w") as f:
        json.dump(_manifest(), f, indent=1, sort_keys=True)
    os.replace(tmp, dest / STAMP)
    return dest


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(
        prog="python -m expectations.vendor",
        description="Download the pinned Data Docs CSS/JS tarballs from registry.npmjs.org into the "
                    "cache (once; each checked against its pinned sha512), so that Data Docs pages "
                    "are made to work offline without any network at run time.")
    ap.add_argument("--cache", type=Path, help=f"cache folder (default: $O2P_VENDOR_CACHE, else {cache_dir()})")
    ap.add_argument("--dest", type=Path, help="also extract the needed files into this folder")
    args = ap.parse_args(argv)
    cache = args.cache or cache_dir()
    total = 0
    try:
        for pin in PINS:
            had = _tarball_path(pin, cache).is_file()
            size = len(tarball(pin, cache))
            total += size
            print(f"{pin.name}@{pin.version}: {size / 1024:.0f} KiB, {'cached' if had else 'downloaded'}, sha512 ok")
        if args.dest:
            ensure_vendored(args.dest, cache=cache, offline=True)
            print(f"extracted into {args.dest}")
    except VendorError as exc:
        print(f"expectations.vendor: {exc}", file=sys.stderr)
        return 1
    print(f"{len(PINS)} tarballs, {total / 1024 / 1024:.1f} MiB, in {cache}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
