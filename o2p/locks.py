"""One local lock per $O2P_HOME for the commands that write the warehouse (`o2p run`,
`o2p payouts release`): DuckDB allows one writing process, and a second release of a period must
be refused at once, not after minutes of dbt. The registry's unique claim is what guards a
period across hosts; this lock only makes the refusal on one host immediate and clear."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from o2p.errors import O2PError


@contextmanager
def exclusive(path: Path, what: str) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 300, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise O2PError(f"refused: {holder} is still running on this O2P_HOME, so {what} would race it; "
                       f"nothing was done. Run it again when that finishes (lock: {path})") from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{what} (pid {os.getpid()}, since {time.strftime('%Y-%m-%dT%H:%M:%S%z')})".encode(), 0)
        yield
    finally:
        os.close(fd)   # drops the flock
