"""A kafka-python workaround: a rebalance whose JoinGroup/SyncGroup outlasts a short `poll()`
must still end in an assignment (see `sticky_rejoin`)."""

from __future__ import annotations

import logging

log = logging.getLogger("o2p.capture")


def sticky_rejoin(consumer) -> bool:
    """Make a metadata- or subscription-triggered rebalance survive a short `poll()`.

    kafka-python 3.0.12 decides whether to (re)join from `need_rejoin()`, which is True while
    the assignment snapshot differs from the metadata snapshot. The leader updates the
    assignment snapshot *while* its JoinGroup/SyncGroup is in flight; when that round trip
    outlasts the poll's timeout, the next poll sees `need_rejoin()` False and never collects
    the SyncGroup result: the member keeps an empty assignment until the next metadata change
    (up to `metadata_max_age_ms`). Reproduced here about once in 20 fresh groups (capture
    exited "no partitions assigned within 60 s" in CI). The Java client had the same bug and
    fixed it by turning the trigger into the sticky `rejoinNeeded` flag (KAFKA-9815,
    apache/kafka#8420); this does the same, and is skipped if a later kafka-python changes the
    internals. Returns whether it was applied."""
    coord = getattr(consumer, "_coordinator", None)
    inner = getattr(coord, "need_rejoin", None)
    if inner is None or not hasattr(coord, "request_rejoin") or not hasattr(coord, "rejoin_needed"):
        log.warning("kafka-python internals changed: the sticky-rejoin fix (KAFKA-9815) is not applied")
        return False

    def need_rejoin():
        if inner():
            coord.request_rejoin()     # cleared only when a join round completes
            return True
        return False

    coord.need_rejoin = need_rejoin
    return True
