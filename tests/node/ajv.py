"""ajv (with ajv-formats), the most used JSON Schema validator of the Node world, for the test that
proves the topic schemas suffice outside Python (issue #15).

Each tarball is pinned with the npm registry's `dist.integrity` and fetched once into the cache
of `expectations.vendor` (`$O2P_VENDOR_CACHE`, else `~/.cache/o2p/npm`), checked before use, then
laid out as `node_modules/<name>/` beside it. Node itself is Debian's `nodejs` (`./dev test`
installs it when it can)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from expectations.vendor import Pin, cache_dir, tarball

PINS = (   # ajv 8.17.1 and its dependencies (exact versions inside their ranges), ajv-formats 3.0.1
    Pin("ajv", "8.17.1",
        "sha512-B/gBuNg5SiMTrPkC+A2+cW0RszwxYmn6VYxB/inlBStS5nx6xHIt/ehKRhIMhqusl7a8LjQoZnjCs5vhwxOQ1g==", {}),
    Pin("ajv-formats", "3.0.1",
        "sha512-8iUql50EUR+uUcdRQ3HDqa6EVyo3docL8g5WJ3FNcWmu62IbkGUue/pEyLBW8VGKKucTPgqeks4fIU1DA4yowQ==", {}),
    Pin("fast-deep-equal", "3.1.3",
        "sha512-f3qQ9oQy9j2AhBe/H9VC91wLmKBCCU/gDOnKNAYG5hswO7BLKj09Hc5HYNz9cGI++xlpDCIgDaitVs03ATR84Q==", {}),
    Pin("fast-uri", "3.0.6",
        "sha512-Atfo14OibSv5wAp4VWNsFYE1AchQRTv9cBGWET4pZWHzYshFSS9NQI6I57rdKn9croWVMbYFbLhJ+yJvmZIIHw==", {}),
    Pin("json-schema-traverse", "1.0.0",
        "sha512-NM8/P9n3XjXhIZn1lLhkFaACTOURQXjWhV4BA/RnOv8xvgqtqpAX9IO4mRQxSx1Rlo4tqzeqb0sOlruaOy3dug==", {}),
    Pin("require-from-string", "2.0.2",
        "sha512-Xf0nWe6RseziFMu+Ap9biiUbmplq6S9/p+7w7YXP/JBHhrUDDUhwa+vANyubuqfZWTveU//DYVGsDG7RKL/vEw==", {}),
)


def node_modules(cache: Path | None = None) -> Path:
    """A `node_modules` folder holding ajv, ajv-formats and their dependencies (made once)."""
    cache = cache or cache_dir()
    root = cache / "ajv-node_modules" / "node_modules"
    stamp = root / ".o2p-pins"
    want = "\n".join(f"{p.name}@{p.version} {p.integrity}" for p in PINS)
    if stamp.is_file() and stamp.read_text() == want:
        return root
    for pin in PINS:
        data = tarball(pin, cache)
        target = root / pin.name
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for m in tar.getmembers():
                _, _, rel = m.name.partition("/")   # npm tarballs hold one top folder ("package/")
                if not m.isfile() or not rel or ".." in Path(rel).parts or rel.startswith("/"):
                    continue
                out = target / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(tar.extractfile(m).read())
    stamp.write_text(want)
    return root
