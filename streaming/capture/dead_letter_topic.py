"""The dead-letter topic: every dead letter of a batch is sent there, at least once, before the
batch is committed (the landing zone keeps the exactly-once copy, `landing/deadletters/`)."""

from __future__ import annotations

import logging
import time

from o2p.config import Config
from o2p.errors import O2PError
from streaming.client_settings import RECONNECT_BACKOFF_MAX_MS

log = logging.getLogger("o2p.capture")


class DeadLetterTopic:
    def __init__(self, cfg: Config, give_up: bool = True):
        self.cfg = cfg
        self.give_up = give_up   # on an unreachable broker after capture.broker_unreachable_seconds (until-idle)
        self._producer = None

    @property
    def producer(self):
        """The Kafka producer, made on first use (a batch without dead letters needs none)."""
        if self._producer is None:
            from kafka import KafkaProducer

            self._producer = KafkaProducer(
                bootstrap_servers=self.cfg.kafka.bootstrap_servers, client_id="o2p-capture-dlq",
                acks="all", retries=10, linger_ms=5,
                max_request_size=max(self.cfg.capture.max_message_bytes * 4, 4194304),
                reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
            )
        return self._producer

    @producer.setter
    def producer(self, producer) -> None:
        self._producer = producer

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close()
            self._producer = None

    def send(self, topic: str, partition: int, dead: list[dict]) -> None:
        """To the dead-letter topic, at least once (consumers dedupe on the source coordinates),
        before the batch is committed. What the broker does not acknowledge is sent again, for
        capture.broker_unreachable_seconds under `--until-idle` (then capture stops with one
        line: the batch is not committed, so the next run lands it and sends its dead letters
        again) and for as long as it takes in the service. An error that no retry can mend
        stops capture at once, naming it. A value over the largest request is cut to fit on the
        topic (header `o2p.truncated`: its length); the landing zone keeps it whole."""
        limit = self.cfg.capture.broker_unreachable_seconds
        started = time.monotonic()
        todo = dead
        while True:
            failed, errors = self._send_once(topic, partition, todo)
            if not failed:
                return
            fatal = [e for e in errors if not getattr(e, "retriable", True)]
            waited = time.monotonic() - started
            if fatal or (self.give_up and waited >= limit):
                why = fatal[0] if fatal else (errors[-1] if errors else "no acknowledgement")
                raise O2PError(
                    f"could not send {len(failed)} dead letter(s) of {topic}[{partition}] to "
                    f"{self.cfg.kafka.topics.deadletter}"
                    + ("" if fatal else f" within {limit:g} s (capture.broker_unreachable_seconds)")
                    + f": {why}; nothing of this batch was committed: run capture again once that is mended")
            log.warning("%d dead letter(s) not acknowledged after %.0f s (%s); sending them again",
                        len(failed), waited, errors[-1] if errors else "no answer")
            time.sleep(1)
            todo = failed

    def _send_once(self, topic: str, partition: int, todo: list[dict]) -> tuple[list[dict], list]:
        """Send `todo` and wait for the acknowledgements; return what was not acknowledged and why."""
        from kafka.errors import KafkaError

        from streaming.producer import max_message_size

        room = max_message_size(self.cfg) - 64 * 1024   # key, headers and the batch's own overhead
        sent, errors = [], []
        try:
            for d in todo:
                value = d["raw"] if d["raw"] is not None else b""
                headers = [("o2p.reason", d["reason"].encode("utf-8")),
                           ("o2p.source", f"{topic}/{partition}/{d['_offset']}".encode())]
                if len(value) > room:
                    headers.append(("o2p.truncated", str(len(value)).encode()))
                    value = value[:room]
                sent.append((d, self.producer.send(self.cfg.kafka.topics.deadletter, value=value, headers=headers,
                                                   key=f"{topic}/{partition}/{d['_offset']}".encode())))
            self.producer.flush(timeout=10)
        except KafkaError as exc:
            errors.append(exc)
        unsent = {id(d) for d, _ in sent}
        failed = [d for d in todo if id(d) not in unsent]
        for d, fut in sent:
            if not fut.is_done or fut.failed():
                failed.append(d)
                if fut.is_done and fut.exception is not None:
                    errors.append(fut.exception)
        return failed, errors
