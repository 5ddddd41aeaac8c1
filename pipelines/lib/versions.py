"""Code versions and owners of the Python assets, so the UI says what a code change made stale
and whom to ask (dbt models get theirs from the manifest: the checksum of their SQL)."""

from __future__ import annotations

import hashlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

DATA_PLATFORM = "team:data-platform"
FINANCE = "team:finance"


def code_version(*files: str) -> str:
    """The SHA-256 (12 hex) of the source files an asset's result depends on, paths from the
    repository root: a change to any of them marks the asset's materializations stale."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + (REPO / name).read_bytes() + b"\0")
    return h.hexdigest()[:12]
