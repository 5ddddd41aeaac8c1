"""Partition ownership: an exclusive `flock` on `_state/<topic>+<partition>.lock` per owned
partition. The kernel drops it when the process dies (kill -9 included); a new owner waits for
it (`capture.lock_timeout_seconds`) before it recovers the partition, so a process that missed a
rebalance can never write beside its successor."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from o2p import layout
from o2p.errors import O2PError


class PartitionLocks:
    def __init__(self, landing: Path, timeout_seconds: float, owner_pid: int):
        self.landing = landing
        self.state_dir = layout.state_dir(landing)
        self.timeout_seconds = timeout_seconds
        self.owner_pid = owner_pid   # written into the lock file: who holds it
        self._fds: dict = {}         # (topic, partition) → fd holding the partition's flock

    def __contains__(self, topic_partition: tuple[str, int]) -> bool:
        return topic_partition in self._fds

    def acquire(self, topic: str, partition: int) -> None:
        """Take the partition's lock, waiting for a previous owner to finish its last batch."""
        if (topic, partition) in self._fds:
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        path = layout.state_lock(self.landing, topic, partition)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.timeout_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    holder = os.pread(fd, 200, 0).decode(errors="replace").strip()
                    os.close(fd)
                    raise O2PError(
                        f"{path}: partition {topic}[{partition}] is still locked by another capture "
                        f"process ({holder or 'unknown'}) after {self.timeout_seconds:.0f} s; "
                        "is a stuck consumer still running on this landing zone?") from None
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {self.owner_pid} on {os.uname().nodename}\n".encode(), 0)
        self._fds[(topic, partition)] = fd

    def release(self, topic: str, partition: int) -> None:
        fd = self._fds.pop((topic, partition), None)
        if fd is not None:
            os.close(fd)   # closing the descriptor drops the flock

    def release_all(self) -> None:
        for topic, partition in list(self._fds):
            self.release(topic, partition)
