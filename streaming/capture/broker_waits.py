"""Waiting on the broker: for the subscribed topics to exist, and through an outage (backoff,
a retry line every 5 s, and under `--until-idle` giving up after
`capture.broker_unreachable_seconds`)."""

from __future__ import annotations

import logging
import time

from o2p.config import Config
from o2p.errors import KAFKA_TIMEOUT, KAFKA_UNREACHABLE, O2PError

log = logging.getLogger("o2p.capture")


def wait_for_topics(consumer, topics, timeout: float = 30, stopped=lambda: False) -> None:
    """Block until the client's metadata knows every subscribed topic's partitions, so the
    first JoinGroup is made with them (an assignment computed from empty metadata is empty);
    a topic that does not exist is a clear error, not an idle consumer. Returns early once
    `stopped()` (a stop signal)."""
    deadline = time.monotonic() + timeout
    missing = list(topics)
    while missing and not stopped():
        missing = [t for t in missing if not consumer.partitions_for_topic(t)]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise O2PError(f"kafka topic(s) {', '.join(missing)} do not exist or have no partitions on "
                           f"{consumer.config['bootstrap_servers']}: run `o2p kafka up` (creates them) "
                           "or check kafka.topics in the config")
        time.sleep(0.2)


class BrokerUnreachable(O2PError):
    """The broker did not answer for capture.broker_unreachable_seconds (exit 1)."""


def _unreachable_errors() -> tuple:
    """What kafka-python raises when no broker answers (the names differ between its releases)."""
    import kafka.errors as ke

    return tuple(getattr(ke, n) for n in (*KAFKA_UNREACHABLE, *KAFKA_TIMEOUT) if hasattr(ke, n))


class NoBrokerListening(ConnectionError):
    """No bootstrap server accepts a TCP connection."""

    @classmethod
    def at(cls, cfg: Config) -> NoBrokerListening:
        return cls(f"no broker accepts connections at {cfg.kafka.bootstrap_servers}")


UNREACHABLE = (*_unreachable_errors(), NoBrokerListening)


class BrokerOutage:
    """How long the broker has not answered, how long to wait before the next try, and (with
    `give_up`, under `--until-idle`) when to stop; says so to the operator every 5 s."""

    def __init__(self, cfg: Config, echo=print):
        self.cfg = cfg
        self.echo = echo
        self.give_up = False
        self.since: float | None = None    # when the broker stopped answering (None: it answers)
        self._next_line = 0.0

    def down(self, doing: str, exc: BaseException) -> float:
        """Note that the broker did not answer; give up (until-idle) once that has lasted
        capture.broker_unreachable_seconds; return how long to wait before the next try."""
        now = time.monotonic()
        if self.since is None:
            self.since = now
        down_for = now - self.since
        limit = self.cfg.capture.broker_unreachable_seconds
        if self.give_up and down_for >= limit:
            raise BrokerUnreachable(
                f"the Kafka broker {self.cfg.kafka.bootstrap_servers} has been unreachable for {down_for:.0f} s "
                f"(capture.broker_unreachable_seconds = {limit:g}) while {doing}: start it (`o2p kafka up`) or "
                "check kafka.bootstrap_servers, then run capture again; everything landed so far is kept",
                f"last error: {type(exc).__name__}: {exc}")
        wait = min(10.0, 0.5 * 2 ** min(int(down_for), 5) if down_for < 1 else 1 + down_for / 4)
        if now >= self._next_line:
            self._next_line = now + 5
            give_up = f", giving up after {limit:g} s" if self.give_up else ""
            self.echo(f"capture: broker {self.cfg.kafka.bootstrap_servers} unreachable for {down_for:.0f} s while "
                      f"{doing} ({type(exc).__name__}); retrying{give_up}")
        log.debug("broker unreachable while %s: %s", doing, exc)
        return wait

    def back(self) -> None:
        """The broker answered: end the outage (and say how long it lasted)."""
        if self.since is not None:
            self.echo(f"capture: broker {self.cfg.kafka.bootstrap_servers} reachable again after "
                      f"{time.monotonic() - self.since:.0f} s")
            self.since = None
