"""The publisher for upstream Python services (rulebook §1 keys and topics).

    from streaming.producer import EventPublisher
    with EventPublisher(cfg) as pub:
        pub.publish({"event_id": "e1", "event_type": "click", ...})

acks=all and the idempotent producer: the client's own retries never write a
message twice. What the broker never acknowledged is raised by flush()/close()
(PublishError, with the event ids): publish those again with the same
event_id — capture lands every copy and staging keeps one. Keys: clicks by
buyer_id, orders and refunds by order_id, so one buyer's clicks and one
order's events keep their order in a partition.

Validation before sending (on by default; `EventPublisher(cfg, validate=False)`, `o2p publish
--no-validate` turn it off): `publish()` checks the event against the contract capture applies
(`streaming.contracts`, the same code) and raises `InvalidEvent` naming the field and the rule,
so a bad event never becomes a dead letter. Only the capture-time rules are not checked here
(`occurred_at` after capture + `quality.max_future_seconds`, which depends on capture's clock).
`publish_raw()` sends bytes as they are: it is for messages that are not events (tests, replays of
raw bytes).
"""

from __future__ import annotations

import json

from o2p.config import Config
from o2p.errors import InputError, O2PError
from streaming.client_settings import RECONNECT_BACKOFF_MAX_MS
from streaming.contracts import EVENT_TYPES, TOPIC_OF_TYPE, ContractError, validate_event


class InvalidEvent(InputError):
    """An event breaks the contract; nothing was sent. The message names the field and the rule."""


def check(event: dict, value: bytes | None = None) -> None:
    """Raise InvalidEvent if capture would dead-letter `event` (the capture-time rules aside)."""
    etype = event.get("event_type")
    topic_table = TOPIC_OF_TYPE.get(etype, "orders") if isinstance(etype, str) else "orders"
    try:
        validate_event(encode(event) if value is None else value, topic_table)
    except ContractError as exc:
        raise InvalidEvent(f"event {event.get('event_id')!r} refused before sending: {exc}") from None


def route(cfg: Config, event: dict) -> tuple[str, bytes | None]:
    etype = event.get("event_type")
    if etype not in EVENT_TYPES:
        raise ValueError(f"unknown event_type {etype!r}")
    topic = getattr(cfg.kafka.topics, TOPIC_OF_TYPE[etype])
    key = event.get("buyer_id") if etype == "click" else event.get("order_id")
    return topic, (str(key).encode("utf-8") if key is not None else None)


def encode(event: dict) -> bytes:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def max_message_size(cfg: Config) -> int:
    """The largest request the publisher sends (the local broker's message.max.bytes is the same)."""
    return max(cfg.capture.max_message_bytes * 2, 2097152)


class PublishError(O2PError):
    """Some events were not acknowledged by the broker; `failed` holds (event_id or None, error)."""

    def __init__(self, failed: list):
        self.failed = failed
        eid, exc = failed[0]
        super().__init__(f"{len(failed)} event(s) were not acknowledged by the broker (first: "
                         f"{eid or 'raw message'}: {exc}); publish them again with the same event_id")


class EventPublisher:
    def __init__(self, cfg: Config, validate: bool = True, **overrides):
        from kafka import KafkaProducer

        self.cfg = cfg
        self.validate = validate   # check every publish()ed event against the contract first
        settings = dict(
            bootstrap_servers=cfg.kafka.bootstrap_servers,
            client_id="o2p-publisher",
            acks="all",
            enable_idempotence=True,   # retries inside the client never duplicate a message
            linger_ms=20,
            batch_size=256 * 1024,
            max_request_size=max_message_size(cfg),
            reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,
        )
        settings.update(overrides)
        self.producer = KafkaProducer(**settings)
        self.sent = 0
        self.failed: list = []

    def publish(self, event: dict, headers: list[tuple[str, bytes]] | None = None) -> None:
        """Send one event to its topic with its key; InvalidEvent (nothing sent) if it breaks the
        contract and validation is on."""
        topic, key = route(self.cfg, event)
        value = encode(event)
        if self.validate:
            check(event, value)
        fut = self.producer.send(topic, key=key, value=value, headers=headers)
        event_id = event.get("event_id")
        fut.add_errback(lambda exc: self.failed.append((event_id, exc)))
        self.sent += 1

    def publish_raw(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        fut = self.producer.send(topic, key=key, value=value)
        fut.add_errback(lambda exc: self.failed.append((None, exc)))
        self.sent += 1

    def flush(self) -> None:
        """Wait for every acknowledgement; raise PublishError naming what was not acknowledged."""
        from kafka.errors import KafkaError

        try:
            self.producer.flush()
        except KafkaError:
            # kafka-python gives up waiting on a batch it has split after MessageSizeTooLarge;
            # the split parts are still in flight: wait for them, their futures say the rest
            self.producer.flush()
        if self.failed:
            failed, self.failed = self.failed, []
            raise PublishError(failed)

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self.producer.close()

    def __enter__(self) -> EventPublisher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def publish_file(cfg: Config, path: str, topic: str | None = None, log=print, validate: bool = True) -> int:
    """Publish a JSON-lines file. Every line must fit in a request the broker accepts and, without
    `topic`, be routable and (with `validate`) a valid event, or nothing is sent (exit 2, naming
    the lines, fields and rules)."""
    try:
        with open(path, "rb") as fh:
            numbered = [(i, ln.rstrip(b"\r\n")) for i, ln in enumerate(fh, start=1) if ln.strip()]
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        raise InputError(f"{path}: cannot read the events file: {exc.strerror}") from None
    lines = [raw for _, raw in numbered]
    limit = max_message_size(cfg)
    too_big = [f"{path}:{i}: the message is {len(raw)} bytes, more than the {limit} bytes a request to the "
               "broker may hold (capture.max_message_bytes × 2; capture refuses anything over "
               f"{cfg.capture.max_message_bytes} bytes anyway)" for i, raw in numbered if len(raw) + 512 > limit]
    if too_big:
        raise InputError("messages too large to publish (nothing was published):\n  " + "\n  ".join(too_big[:20]))
    routed: list[tuple[str, bytes | None, bytes]] = []
    if topic is None:
        problems = []
        for i, raw in numbered:
            try:
                event = json.loads(raw)
                if not isinstance(event, dict):
                    raise ValueError("not a JSON object")
                t, key = route(cfg, event)
                if validate:
                    check(event, raw)
                routed.append((t, key, raw))
            except ValueError as exc:   # InvalidEvent is an InputError, not a ValueError
                problems.append(f"{path}:{i}: {exc}")
            except InvalidEvent as exc:
                problems.append(f"{path}:{i}: {exc.args[0]}")
        if problems:
            raise InputError(
                f"{len(problems)} line(s) cannot be published (nothing was published; --no-validate skips the "
                "contract check, --topic sends raw bytes):\n  " + "\n  ".join(problems[:20])
            )
    else:
        routed = [(topic, None, raw) for raw in lines]
    with EventPublisher(cfg) as pub:
        for t, key, raw in routed:
            pub.publish_raw(t, raw, key)
    log(f"published {len(routed)} events from {path}")
    return len(routed)
