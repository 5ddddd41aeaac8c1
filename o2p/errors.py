"""Errors that map to the CLI's exit codes (rulebook §9), and the one sentence an operator reads
for a failure of the environment (disk full, permission denied, broker unreachable…)."""

from __future__ import annotations

import errno


class O2PError(Exception):
    """Anything else that went wrong (exit 1)."""

    exit_code = 1


class InputError(O2PError):
    """Bad input, config or reference data (exit 2). The message names file, row and field."""

    exit_code = 2


class GateFailed(O2PError):
    """A quality gate failed; nothing was released (exit 3)."""

    exit_code = 3


class GateBroken(O2PError):
    """A quality gate could not run (an internal error, not a finding about the data): its check
    fails, so nothing downstream runs, but the command reports an error (exit 1), never a gate
    failure."""

    exit_code = 1


_OS_ADVICE = {
    errno.ENOSPC: ("no space left on the device", "free space there (df -h) and run the command again"),
    errno.EDQUOT: ("the disk quota is exhausted", "free space or raise the quota, then run the command again"),
    errno.EACCES: ("permission denied", "give this user access to it, or choose another O2P_HOME"),
    errno.EPERM: ("operation not permitted", "give this user access to it, or choose another O2P_HOME"),
    errno.EROFS: ("the file system is read-only", "choose a writable O2P_HOME"),
    errno.EMFILE: ("too many open files", "raise the limit (ulimit -n) and run the command again"),
    errno.ENFILE: ("too many open files on this system", "raise fs.file-max, then run the command again"),
    errno.EFBIG: ("the file is larger than this file system or the process's limit allows",
                  "raise the limit (ulimit -f) or choose a file system that takes large files"),
    errno.ENAMETOOLONG: ("a path is too long", "choose a shorter O2P_HOME"),
    errno.EIO: ("an input/output error from the device", "check the disk (dmesg), then run the command again"),
}


# What kafka-python raises when no broker answers (the names differ between its releases): capture
# retries these, and every command explains them in one line.
KAFKA_UNREACHABLE = ("NoBrokersAvailable", "KafkaConnectionError", "NodeNotReadyError", "BrokerNotAvailableError")
KAFKA_TIMEOUT = ("KafkaTimeoutError", "RequestTimedOutError")


def explain_os_error(exc: OSError, where: object = None) -> str | None:
    """One sentence naming what happened, where, and what to do; None for an errno we have no
    advice for. Data that was landed or released before the error is intact: every write of
    o2p goes to a temporary name first and is renamed into place only when complete."""
    advice = _OS_ADVICE.get(exc.errno)
    if advice is None:
        return None
    what, todo = advice
    # the file, else the folder being written (O2P_HOME): "free space there" must say where
    at = f" at {exc.filename}" if exc.filename else (f" holding {where}" if where else "")
    return f"{what}{at}: {todo}; what was written before is intact"


def operator_message(exc: BaseException, where: object = None) -> tuple[str, int] | None:
    """(sentence, exit code) for a failure a person can meet or cause that is not an O2PError, or
    None for a true bug (the caller reports it with the log file's path)."""
    for e in _chain(exc):
        if isinstance(e, OSError):
            text = explain_os_error(e, where)
            if text:
                return text, 1
        name = type(e).__name__
        if name in KAFKA_UNREACHABLE:
            return ("the Kafka broker is not reachable: start it (`o2p kafka up`) or check "
                    "kafka.bootstrap_servers, then run the command again", 1)
        if name in KAFKA_TIMEOUT:
            return (f"the Kafka broker did not answer in time ({e}): check that it is up (`o2p kafka "
                    "status`) and run the command again", 1)
    return None


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__
