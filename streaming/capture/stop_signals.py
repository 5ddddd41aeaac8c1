"""Stop requests (SIGTERM, SIGINT) from the first instant of `o2p capture`.

`o2p.cli` calls `record_early()` as its first statement, before its imports (config, pydantic,
kafka, pyarrow take hundreds of milliseconds): a signal that arrives while the process starts up
is remembered instead of killing it, and `Capture.run` sees it and stops before it connects,
exit 0, nothing written. Commands other than capture get the default handlers back at once
(`restore_defaults`), and a signal recorded meanwhile is re-raised, so they behave as before.

Before the interpreter runs o2p's first line (20-60 ms after exec on a busy machine) no handler
of ours exists: the signal's default action ends the process (SIGTERM: exit status 143, -15 for
a Python parent; SIGINT: 130), before it has opened any file or connection."""

from __future__ import annotations

import signal

SIGNALS = (signal.SIGTERM, signal.SIGINT)
_received: list[int] = []
_installed = False


def _record(signum, _frame) -> None:
    _received.append(signum)


def record_early() -> None:
    """Remember SIGTERM/SIGINT instead of dying (or raising KeyboardInterrupt) during start-up."""
    global _installed
    for s in SIGNALS:
        signal.signal(s, _record)
    _installed = True


def received() -> int | None:
    """The first stop signal received so far, if any."""
    return _received[0] if _received else None


def restore_defaults() -> None:
    """Give a command that is not capture the default handlers back, and deliver to them a signal
    that arrived while they were not installed. Nothing to do unless `record_early` ran."""
    global _installed
    if not _installed:
        return
    _installed = False
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if _received:
        signal.raise_signal(_received.pop(0))
