"""Capture: Kafka → Parquet landing zone, every offset landed exactly once.

The sink discipline (OpenMeter, Kafka Connect S3 sink): validate, write, make
durable, *then* commit. For each partition's micro-batch:

1. every record is validated against the contract; a bad one becomes a dead
   letter (raw bytes, topic, partition, offset, reason) — never dropped. An
   event dated more than `quality.max_future_seconds` after the batch's
   capture time is one too (`occurred_in_future`), so it never creates a day
   partition. Raw IPs are personal data: a valid click keeps only the salted
   `ip_hash`, and every IP address in a dead letter's raw bytes, key and reason
   is replaced by `ip-masked:<12 hex of the salted hash>` (`streaming.privacy`)
   before the Parquet row is written or the message and its `o2p.reason`
   header are sent to the dead-letter topic; only the source topics hold raw
   IPs, under their retention;
2. good rows (grouped by Asia/Shanghai event date) and dead letters are
   written to `_tmp/` and fsynced; dead letters are also sent to the
   dead-letter topic (at least once, keyed by their source coordinates);
3. the partition's state file is replaced atomically: the batch's
   `next_offset` and the list of (tmp → final) renames. **This is the commit
   point**;
4. the renames happen (final names derive from topic, partition and offsets);
5. the Kafka offset is committed (a hint: on (re)assignment the state file
   wins, pending renames are rolled forward and uncommitted tmp files deleted).

A crash between any two steps therefore leaves every offset landed once.

Ownership: while a process owns a partition it holds an exclusive `flock` on
`_state/<topic>+<partition>.lock` (the kernel drops it when the process dies,
kill -9 included). A new owner takes the lock before it recovers, so a
zombie that missed a rebalance can never write beside it; and a batch is only
landed from the state file's `next_offset` on (records before it are already
landed and are skipped; a jump past it — retention deleted offsets before they
were captured — is logged and recorded in the state file as a gap).
"""

from __future__ import annotations

import fcntl
import gc
import hashlib
import json
import logging
import os
import secrets
import signal
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq

from o2p.config import Config
from o2p.errors import KAFKA_TIMEOUT, KAFKA_UNREACHABLE, InputError, O2PError, operator_message
from o2p.timeutil import US_PER_SECOND, shanghai_date
from streaming.contracts import ContractError, validate_event
from streaming.landing import SCHEMAS, file_name, fsync_dir, write_json_atomic
from streaming.privacy import IpMasker

log = logging.getLogger("o2p.capture")
STRUCTS = {table: pa.struct(list(schema)) for table, schema in SCHEMAS.items()}


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


def wait_for_topics(consumer, topics, timeout: float = 30) -> None:
    """Block until the client's metadata knows every subscribed topic's partitions, so the
    first JoinGroup is made with them (an assignment computed from empty metadata is empty);
    a topic that does not exist is a clear error, not an idle consumer."""
    deadline = time.monotonic() + timeout
    missing = list(topics)
    while missing:
        missing = [t for t in missing if not consumer.partitions_for_topic(t)]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise O2PError(f"kafka topic(s) {', '.join(missing)} do not exist or have no partitions on "
                           f"{consumer.config['bootstrap_servers']}: run `o2p kafka up` (creates them) "
                           "or check kafka.topics in the config")
        time.sleep(0.2)


def ip_hasher(cfg: Config):
    """A salted SHA-256 of raw IPs. The salt comes from the environment, or (local/ci only) a
    per-home random salt kept in $O2P_HOME/ip_salt — never in the repo."""
    salt = os.environ.get(cfg.capture.ip_salt_env)
    if not salt:
        if cfg.environment == "prod":
            raise InputError(f"capture.ip_salt_env: environment variable {cfg.capture.ip_salt_env} is not set")
        path = cfg.home_path / "ip_salt"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
        salt = path.read_text().strip()
    salt_b = salt.encode()
    return lambda ip: hashlib.sha256(salt_b + b"\x00" + ip.encode("utf-8")).hexdigest()


class BrokerUnreachable(O2PError):
    """The broker did not answer for capture.broker_unreachable_seconds (exit 1)."""


def _unreachable_errors() -> tuple:
    """What kafka-python raises when no broker answers (the names differ between its releases)."""
    import kafka.errors as ke

    return tuple(getattr(ke, n) for n in (*KAFKA_UNREACHABLE, *KAFKA_TIMEOUT) if hasattr(ke, n))


class NoBrokerListening(ConnectionError):
    """No bootstrap server accepts a TCP connection."""


UNREACHABLE = (*_unreachable_errors(), NoBrokerListening)


@dataclass
class PartitionStats:
    consumed: int = 0
    landed: int = 0
    dead_lettered: int = 0
    next_offset: int | None = None
    gaps: list = field(default_factory=list)


class Rec(NamedTuple):
    """What the sink needs of a Kafka record (cheap to pickle to the sink process)."""
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int


class Sink:
    """The file side of capture: partition locks, recovery, and landing a batch (steps 1-4 of the
    module docstring). It runs in the capture process or in its sink process; it never touches
    the consumer group."""

    def __init__(self, cfg: Config, give_up: bool = True):
        self.cfg = cfg
        self.give_up = give_up   # on an unreachable broker after capture.broker_unreachable_seconds (until-idle)
        t = cfg.kafka.topics
        self.kind_of_topic = {t.clicks: "clicks", t.orders: "orders", t.refunds: "refunds"}
        self.landing = cfg.landing_path
        self.tmp = self.landing / "_tmp"
        self.state_dir = self.landing / "_state"
        self.hasher = ip_hasher(cfg)
        self.masker = IpMasker(self.hasher)     # dead letters only: see streaming.privacy
        self.stats: dict = defaultdict(PartitionStats)
        self.locks: dict = {}       # (topic, partition) → fd holding the partition's flock
        self.track_freshness = False
        self.owner_pid = os.getpid()   # the capture (consumer) process, also when this runs in its sink
        self._dlq = None

    @property
    def dlq(self):
        if self._dlq is None:
            from kafka import KafkaProducer

            self._dlq = KafkaProducer(
                bootstrap_servers=self.cfg.kafka.bootstrap_servers, client_id="o2p-capture-dlq",
                acks="all", retries=10, linger_ms=5,
                max_request_size=max(self.cfg.capture.max_message_bytes * 4, 4194304),
            )
        return self._dlq

    @dlq.setter
    def dlq(self, producer) -> None:
        self._dlq = producer

    def close(self) -> None:
        for topic, partition in list(self.locks):
            self.release(topic, partition)
        if self._dlq is not None:
            self._dlq.close()
            self._dlq = None

    # ---- ownership ---------------------------------------------------------
    def _state_path(self, topic: str, partition: int) -> Path:
        return self.state_dir / f"{topic}+{partition}.json"

    def acquire(self, topic: str, partition: int) -> None:
        """Take the partition's lock, waiting for a previous owner to finish its last batch."""
        if (topic, partition) in self.locks:
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        path = self.state_dir / f"{topic}+{partition}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.cfg.capture.lock_timeout_seconds
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
                        f"process ({holder or 'unknown'}) after {self.cfg.capture.lock_timeout_seconds:.0f} s; "
                        "is a stuck consumer still running on this landing zone?") from None
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {self.owner_pid} on {os.uname().nodename}\n".encode(), 0)
        self.locks[(topic, partition)] = fd

    def release(self, topic: str, partition: int) -> None:
        fd = self.locks.pop((topic, partition), None)
        if fd is not None:
            os.close(fd)   # closing the descriptor drops the flock

    def recover(self, topic: str, partition: int) -> int | None:
        """Roll a committed batch forward and drop uncommitted files; return the next offset."""
        p = self._state_path(topic, partition)
        state = json.loads(p.read_text(encoding="utf-8")) if p.exists() else None
        committed_tmps = set()
        if state:
            for tmp, final in state.get("pending", []):
                tmp_p, final_p = Path(tmp), Path(final)
                committed_tmps.add(tmp_p.name)
                if tmp_p.exists():
                    final_p.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(tmp_p, final_p)
                    fsync_dir(final_p.parent)
            st = self.stats[(topic, partition)]
            st.consumed, st.landed, st.dead_lettered = (
                state["consumed"], state["landed"], state["dead_lettered"])
            st.next_offset = state["next_offset"]
            st.gaps = state.get("gaps", [])
        if self.tmp.is_dir():
            for stray in self.tmp.glob(f"{topic}+{partition}+*"):
                if stray.name not in committed_tmps:
                    stray.unlink(missing_ok=True)
        return state["next_offset"] if state else None

    def assign(self, topic: str, partition: int) -> tuple[int | None, PartitionStats]:
        self.acquire(topic, partition)
        return self.recover(topic, partition), self.stats[(topic, partition)]

    # ---- the batch ---------------------------------------------------------
    def _write_tmp(self, table: str, rows: list[dict], name: str) -> Path:
        self.tmp.mkdir(parents=True, exist_ok=True)
        path = self.tmp / name
        # dicts → one StructArray in C++: 3× faster than Table.from_pylist, 2.4× than column lists
        tbl = pa.Table.from_struct_array(pa.array(rows, type=STRUCTS[table]))
        try:
            with open(path, "wb") as fh:
                pq.write_table(tbl, fh, compression="zstd")
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:   # pyarrow and fsync name no file: name it (a full disk says where)
            if exc.filename is None and exc.errno is not None:
                raise OSError(exc.errno, os.strerror(exc.errno), str(path)) from exc
            raise
        return path

    def _send_dead_letters(self, topic: str, partition: int, dead: list[dict]) -> None:
        """To the dead-letter topic, at least once (consumers dedupe on the source coordinates),
        before the batch is committed. What the broker does not acknowledge is sent again, for
        capture.broker_unreachable_seconds under `--until-idle` (then capture stops with one
        line: the batch is not committed, so the next run lands it and sends its dead letters
        again) and for as long as it takes in the service. An error that no retry can mend
        stops capture at once, naming it. A value over the largest request is cut to fit on the
        topic (header `o2p.truncated`: its length); the landing zone keeps it whole."""
        from kafka.errors import KafkaError

        from streaming.producer import max_message_size

        limit = self.cfg.capture.broker_unreachable_seconds
        started = time.monotonic()
        room = max_message_size(self.cfg) - 64 * 1024   # key, headers and the batch's own overhead
        todo = dead
        while True:
            sent, errors = [], []
            try:
                for d in todo:
                    value = d["raw"] if d["raw"] is not None else b""
                    headers = [("o2p.reason", d["reason"].encode("utf-8")),
                               ("o2p.source", f"{topic}/{partition}/{d['_offset']}".encode())]
                    if len(value) > room:
                        headers.append(("o2p.truncated", str(len(value)).encode()))
                        value = value[:room]
                    sent.append((d, self.dlq.send(self.cfg.kafka.topics.deadletter, value=value, headers=headers,
                                                  key=f"{topic}/{partition}/{d['_offset']}".encode())))
                self.dlq.flush(timeout=10)
            except KafkaError as exc:
                errors.append(exc)
            unsent = {id(d) for d, _ in sent}
            failed = [d for d in todo if id(d) not in unsent]
            for d, fut in sent:
                if not fut.is_done or fut.failed():
                    failed.append(d)
                    if fut.is_done and fut.exception is not None:
                        errors.append(fut.exception)
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

    def land(self, topic: str, partition: int, records: list) -> dict | None:
        """Land one batch of one partition; returns what the consumer commits (None: nothing to)."""
        if not records:
            return None
        if (topic, partition) not in self.locks:
            log.warning("not landing %s[%d]: this process no longer owns it", topic, partition)
            return None
        st = self.stats[(topic, partition)]
        gaps = []
        if st.next_offset is not None:
            if records[0].offset < st.next_offset:      # already landed (a re-delivery): skip
                records = [r for r in records if r.offset >= st.next_offset]
                if not records:
                    return None
            if records[0].offset > st.next_offset:
                gaps.append([st.next_offset, records[0].offset - 1])
                log.error("%s[%d]: offsets %d-%d were never captured (deleted by retention?); recorded "
                          "as a gap in the state file", topic, partition, st.next_offset, records[0].offset - 1)
        kind = self.kind_of_topic[topic]
        first, last = records[0].offset, records[-1].offset
        now_us = time.time_ns() // 1000
        max_future = self.cfg.quality.max_future_seconds
        latest_us = now_us + max_future * US_PER_SECOND     # a later occurred_at is a dead letter
        by_date: dict[str, list[dict]] = defaultdict(list)
        dead: list[dict] = []
        max_bytes = self.cfg.capture.max_message_bytes
        for rec in records:
            value = rec.value
            try:
                if value is None:
                    raise ContractError("empty message (no value)")
                if len(value) > max_bytes:
                    raise ContractError(f"message of {len(value)} bytes exceeds capture.max_message_bytes ({max_bytes})")
                row = validate_event(value, kind, self.hasher, latest_us, max_future)
            except ContractError as exc:    # no raw IP at rest, in the Parquet row nor the DLQ topic
                mask = self.masker
                dead.append({"_topic": topic, "_partition": partition, "_offset": rec.offset,
                             "_captured_at_us": now_us, "capture_date": shanghai_date(now_us).isoformat(),
                             "key": mask.bytes(rec.key), "raw": mask.bytes(value), "reason": mask.text(str(exc))})
                continue
            row["_offset"] = rec.offset
            by_date[row["event_date"]].append(row)
        for rows in by_date.values():
            for row in rows:
                row["_topic"], row["_partition"], row["_captured_at_us"] = topic, partition, now_us

        name = file_name(topic, partition, first, last)
        pending: list[tuple[str, str]] = []
        for day, rows in sorted(by_date.items()):
            tmp = self._write_tmp(kind, rows, f"{topic}+{partition}+{first}+{day}.parquet")
            pending.append((str(tmp), str(self.landing / kind / f"event_date={day}" / name)))
        if dead:
            tmp = self._write_tmp("deadletters", dead, f"{topic}+{partition}+{first}+dead.parquet")
            day = dead[0]["capture_date"]
            pending.append((str(tmp), str(self.landing / "deadletters" / f"capture_date={day}" / name)))
            self._send_dead_letters(topic, partition, dead)
        fsync_dir(self.tmp)
        landed = sum(len(r) for r in by_date.values())
        state = {
            "topic": topic, "partition": partition, "next_offset": last + 1,
            "pending": pending, "gaps": st.gaps + gaps,
            "consumed": st.consumed + len(records), "landed": st.landed + landed,
            "dead_lettered": st.dead_lettered + len(dead), "updated_at_us": now_us,
        }
        write_json_atomic(self._state_path(topic, partition), state)   # the commit point
        for tmp, final in pending:
            Path(final).parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
        for d in {str(Path(f).parent) for _, f in pending}:
            fsync_dir(Path(d))
        fresh = None
        if self.track_freshness:
            landed_ms = time.time_ns() // 1_000_000
            fresh = [landed_ms - rec.timestamp for rec in records]
        st.consumed, st.landed, st.dead_lettered, st.next_offset, st.gaps = (
            state["consumed"], state["landed"], state["dead_lettered"], last + 1, state["gaps"])
        log.info("landed %s[%d] offsets %d-%d: %d rows, %d dead letters", topic, partition, first, last, landed, len(dead))
        return {"next_offset": last + 1, "stats": st, "freshness": fresh}


# ---- the sink process ------------------------------------------------------

def _sink_main(cfg: Config, conn, parent_pid: int, give_up: bool = True) -> None:
    """The sink process: land what the capture process sends, answer in order.

    It dies with its parent (PR_SET_PDEATHSIG = SIGKILL), so a killed capture process never
    leaves a writer behind; and it holds the partition locks itself, so a new owner cannot
    start recovering a partition until this process is gone."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
    except OSError:
        pass
    if os.getppid() != parent_pid:
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)    # the parent decides when to stop
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    gc.freeze()
    gc.set_threshold(200_000, 50, 100)
    sink = None
    try:
        sink = Sink(cfg, give_up=give_up)   # may fail too (no salt in prod, a full disk): said below
        sink.owner_pid = parent_pid
        while True:
            msg = conn.recv()
            op = msg[0]
            if op == "land":
                _, topic, partition, columns, fresh = msg
                records = [Rec(*r) for r in zip(*columns, strict=True)] if columns else []
                sink.track_freshness = fresh
                conn.send(("landed", topic, partition, sink.land(topic, partition, records)))
            elif op == "assign":
                conn.send(("assigned", msg[1], msg[2], sink.assign(msg[1], msg[2])))
            elif op == "release":
                sink.release(msg[1], msg[2])
                conn.send(("released", msg[1], msg[2], None))
            elif op == "stop":
                break
    except EOFError:
        pass
    except BaseException as exc:
        import traceback

        if isinstance(exc, O2PError):   # our own words, and their exit code (2: bad config)
            text, code = (str(exc.args[0]) if exc.args else type(exc).__name__), exc.exit_code
        else:
            text, code = operator_message(exc, where=cfg.home_path) or (f"{type(exc).__name__}: {exc}", 1)
        try:
            conn.send(("error", None, None, (text, code, traceback.format_exc())))
        except OSError:
            pass
    finally:
        if sink is not None:
            sink.close()


class SinkProcess:
    """The capture process's handle on its sink process. Landing is asynchronous (the consumer
    keeps polling while the previous batch is validated and written, on the other core);
    assign and release wait for the answer."""

    def __init__(self, cfg: Config, max_in_flight: int = 3, give_up: bool = True):
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_sink_main, args=(cfg, child, os.getpid(), give_up), name="o2p-capture-sink",
                                daemon=True)
        self.proc.start()
        child.close()
        self.in_flight: list[tuple[str, int]] = []
        self.max_in_flight = max_in_flight
        self.failed: O2PError | None = None   # once the sink has failed, every call says why
        self.on_landed = None    # callback(topic, partition, result)

    def _receive(self) -> tuple:
        if self.failed is not None:
            raise self.failed
        try:
            kind, topic, partition, payload = self.conn.recv()
        except (EOFError, OSError):
            self.proc.join(timeout=5)
            self.failed = O2PError(f"the capture sink process exited (code {self.proc.exitcode}); nothing it had "
                                   "not committed was landed: run capture again")
            raise self.failed from None
        if kind == "error":
            text, code, trace = payload
            # the sink's own words (a full disk: where, and what to do); its traceback goes to the log
            self.failed = (InputError if code == 2 else O2PError)(f"capture stopped: {text}", trace)
            raise self.failed
        if kind == "landed":
            self.in_flight.remove((topic, partition))
            if payload is not None:
                self.on_landed(topic, partition, payload)
        return kind, topic, partition, payload

    def pump(self) -> None:
        """Handle every answer that has arrived, without waiting."""
        while self.in_flight and self.conn.poll():
            self._receive()

    def land(self, topic: str, partition: int, records: list, fresh: bool) -> None:
        while len(self.in_flight) >= self.max_in_flight:    # bound the memory held in the pipe
            self._receive()
        self._send(("land", topic, partition, records, fresh))
        self.in_flight.append((topic, partition))

    def drain(self) -> None:
        while self.in_flight:
            self._receive()

    def _send(self, msg: tuple) -> None:
        if self.failed is not None:
            raise self.failed
        try:
            self.conn.send(msg)
        except OSError:   # the sink is gone (BrokenPipe): say what it said, if it said anything
            while self.conn.poll(0):
                self._receive()
            self._receive()

    def _call(self, op: str, topic: str, partition: int):
        self._send((op, topic, partition))
        while True:
            kind, t, p, payload = self._receive()
            if kind != "landed" and (t, p) == (topic, partition):
                return payload

    def assign(self, topic: str, partition: int):
        return self._call("assign", topic, partition)

    def release(self, topic: str, partition: int) -> None:
        self.drain()
        self._call("release", topic, partition)

    def close(self) -> None:
        try:
            self.drain()
            self.conn.send(("stop",))
        except (OSError, O2PError):
            pass
        self.proc.join(timeout=30)
        if self.proc.is_alive():
            self.proc.kill()


# ---- the consumer ----------------------------------------------------------

@dataclass
class _Buffer:
    records: list = field(default_factory=list)
    nbytes: int = 0
    first_at: float = 0.0


class Capture:
    """The Kafka side: the consumer group, buffers, the flush policy, offset commits, lag.

    With `capture.sink_process: true` (the default) validation and writing run in a child
    process (see SinkProcess), so the two halves of the work use both cores."""

    def __init__(self, cfg: Config, *, group_id: str | None = None, echo=print):
        self.cfg = cfg
        self.echo = echo
        t = cfg.kafka.topics
        self.kind_of_topic = {t.clicks: "clicks", t.orders: "orders", t.refunds: "refunds"}
        self.group_id = group_id or cfg.kafka.consumer_group
        self.buffers: dict = defaultdict(_Buffer)
        self.stats: dict = defaultdict(PartitionStats)
        self.lag: dict = {}         # (topic, partition) → messages behind the log end
        self.freshness_ms: list[int] | None = None   # set to a list to record publish→landed latency
        self._stop = False
        self._fatal: BaseException | None = None   # raised by the IO thread's listener, re-raised here
        self._until_idle = False
        self._unreachable_since: float | None = None
        self._next_retry_line = 0.0
        self.consumer = None
        self.sink = None

    # ---- kafka -------------------------------------------------------------
    def _connect(self) -> None:
        from kafka import ConsumerRebalanceListener, KafkaConsumer

        capture = self

        class Listener(ConsumerRebalanceListener):
            # These run on kafka-python's IO thread, which reports an exception only as "User
            # rebalance callback throws an error": a failure (a full disk, a dead sink) is kept
            # and raised by the main loop instead, with its own words.
            def on_partitions_revoked(self, revoked):
                if capture._fatal is not None:
                    return
                try:
                    for tp in revoked:   # land what we hold before another process takes over
                        capture._flush(tp)
                        capture.sink.release(tp.topic, tp.partition)
                        capture.lag.pop((tp.topic, tp.partition), None)
                except BaseException as exc:   # noqa: BLE001 - re-raised by the main loop
                    capture._fail(exc)

            def on_partitions_assigned(self, assigned):
                if capture._fatal is not None:
                    return
                try:
                    for tp in assigned:
                        nxt, stats = capture.sink.assign(tp.topic, tp.partition)
                        capture.stats[(tp.topic, tp.partition)] = stats
                        if nxt is not None:
                            capture.consumer.seek(tp, nxt)
                except BaseException as exc:   # noqa: BLE001 - re-raised by the main loop
                    capture._fail(exc)
                    return
                capture.echo(f"capture: assigned {', '.join(f'{t.topic}[{t.partition}]' for t in sorted(assigned)) or 'nothing'}")

        if self.cfg.capture.sink_process:
            self.sink = SinkProcess(self.cfg, give_up=self._until_idle)
            self.sink.on_landed = self._landed
        else:
            self.sink = Sink(self.cfg, give_up=self._until_idle)
        self.consumer = self._reachable("connecting", lambda: KafkaConsumer(
            bootstrap_servers=self.cfg.kafka.bootstrap_servers,
            group_id=self.group_id,
            client_id="o2p-capture",
            enable_auto_commit=False,       # commit only after the files are durable
            auto_offset_reset="earliest",   # a new group starts at the beginning: lose nothing
            max_poll_records=5000,
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=8 * 1024 * 1024,
            session_timeout_ms=self.cfg.capture.session_timeout_ms,
            heartbeat_interval_ms=max(300, self.cfg.capture.session_timeout_ms // 3),
        ))
        sticky_rejoin(self.consumer)
        self._reachable("waiting for the topics", lambda: wait_for_topics(self.consumer, list(self.kind_of_topic)))
        self.consumer.subscribe(list(self.kind_of_topic), listener=Listener())

    def _landed(self, topic: str, partition: int, result: dict) -> None:
        """A batch is durable in the landing zone: take its counts and commit its offset."""
        from kafka.structs import OffsetAndMetadata, TopicPartition

        self.stats[(topic, partition)] = result["stats"]
        if self.freshness_ms is not None and result["freshness"]:
            self.freshness_ms.extend(result["freshness"])
        # Asynchronous: this also runs inside the revocation listener, on kafka-python's IO thread,
        # where a blocking commit is refused. The state file is the truth; the group's committed
        # offset is what lag tools (kafka-consumer-groups) show, and `_commit_landed` makes it
        # exact before a clean exit.
        try:
            self.consumer.commit_async({TopicPartition(topic, partition): OffsetAndMetadata(result["next_offset"], "", -1)},
                                       callback=self._commit_done)
        except Exception as exc:
            self._commit_done(None, exc)

    @staticmethod
    def _commit_done(offsets, response) -> None:
        if isinstance(response, Exception):   # a failed commit only costs a re-seek from the state file
            log.warning("offset commit %s failed (state files are authoritative): %s", offsets, response)

    def _commit_landed(self) -> None:
        """Commit every assigned partition's landed position, blocking (main thread only)."""
        from kafka.structs import OffsetAndMetadata, TopicPartition

        assigned = self.consumer.assignment()
        offsets = {TopicPartition(t, p): OffsetAndMetadata(s.next_offset, "", -1)
                   for (t, p), s in self.stats.items()
                   if s.next_offset is not None and TopicPartition(t, p) in assigned}
        if offsets:
            try:
                self.consumer.commit(offsets)
            except Exception as exc:
                self._commit_done(offsets, exc)

    def _flush(self, tp) -> None:
        buf = self.buffers.pop(tp, None)
        if not buf or not buf.records:
            return
        fresh = self.freshness_ms is not None
        if isinstance(self.sink, SinkProcess):   # four flat lists pickle faster than 50k tuples
            recs = buf.records
            columns = ([r.offset for r in recs], [r.key for r in recs], [r.value for r in recs],
                       [r.timestamp for r in recs])
            self.sink.land(tp.topic, tp.partition, columns, fresh)
        else:
            records = [Rec(r.offset, r.key, r.value, r.timestamp) for r in buf.records]
            self.sink.track_freshness = fresh
            result = self.sink.land(tp.topic, tp.partition, records)
            if result is not None:
                self._landed(tp.topic, tp.partition, result)

    def _flush_due(self, force: bool = False) -> None:
        now = time.monotonic()
        c = self.cfg.capture
        for tp in list(self.buffers):
            buf = self.buffers[tp]
            if (force or len(buf.records) >= c.flush_records or buf.nbytes >= c.flush_bytes
                    or now - buf.first_at >= c.flush_seconds):
                self._flush(tp)
        # Adaptive batching: an idle sink process gets the largest buffer at once (when it is
        # worth a file), so a backlog is landed while the next batches are being polled.
        if isinstance(self.sink, SinkProcess) and not self.sink.in_flight and self.buffers:
            tp, buf = max(self.buffers.items(), key=lambda kv: len(kv[1].records))
            if len(buf.records) >= min(c.flush_records, 5000):
                self._flush(tp)

    # ---- loop --------------------------------------------------------------
    def stop(self, *_args) -> None:
        self._stop = True

    def _fail(self, exc: BaseException) -> None:
        if self._fatal is None:
            self._fatal = exc
        self._stop = True

    def _broker_down(self, doing: str, exc: BaseException) -> float:
        """Note that the broker did not answer; give up (until-idle) once that has lasted
        capture.broker_unreachable_seconds; return how long to wait before the next try."""
        now = time.monotonic()
        if self._unreachable_since is None:
            self._unreachable_since = now
        down_for = now - self._unreachable_since
        limit = self.cfg.capture.broker_unreachable_seconds
        if self._until_idle and down_for >= limit:
            raise BrokerUnreachable(
                f"the Kafka broker {self.cfg.kafka.bootstrap_servers} has been unreachable for {down_for:.0f} s "
                f"(capture.broker_unreachable_seconds = {limit:g}) while {doing}: start it (`o2p kafka up`) or "
                "check kafka.bootstrap_servers, then run capture again; everything landed so far is kept",
                f"last error: {type(exc).__name__}: {exc}")
        wait = min(10.0, 0.5 * 2 ** min(int(down_for), 5) if down_for < 1 else 1 + down_for / 4)
        if now >= self._next_retry_line:
            self._next_retry_line = now + 5
            give_up = f", giving up after {limit:g} s" if self._until_idle else ""
            self.echo(f"capture: broker {self.cfg.kafka.bootstrap_servers} unreachable for {down_for:.0f} s while "
                      f"{doing} ({type(exc).__name__}); retrying{give_up}")
        log.warning("broker unreachable while %s: %s", doing, exc)
        return wait

    def _reachable(self, doing: str, call):
        """`call()`, retried with backoff while the broker is unreachable (see _broker_down)."""
        while True:
            try:
                if not self._tcp_up():   # kafka-python's metadata calls can block without bound
                    raise NoBrokerListening(f"no broker accepts connections at {self.cfg.kafka.bootstrap_servers}")
                result = call()
            except UNREACHABLE as exc:
                if self._stop:
                    raise
                time.sleep(self._broker_down(doing, exc))
                continue
            self._broker_back()
            return result

    def _caught_up(self, assigned) -> bool:
        """Whether every assigned partition is at its log end; False while the broker does not
        answer (bounded: each request waits at most 5 s, and the wait is counted)."""
        try:
            if not self._tcp_up():
                raise NoBrokerListening(f"no broker accepts connections at {self.cfg.kafka.bootstrap_servers}")
            ends = self.consumer.end_offsets(list(assigned), timeout_ms=5000)
            positions = {tp: self.consumer.position(tp, timeout_ms=5000) for tp in assigned}
        except UNREACHABLE as exc:
            time.sleep(min(self._broker_down("checking the log ends", exc), 2.0))
            return False
        self._broker_back()
        return all(positions[tp] is not None and positions[tp] >= ends[tp] for tp in assigned)

    def _broker_back(self) -> None:
        if self._unreachable_since is not None:
            self.echo(f"capture: broker {self.cfg.kafka.bootstrap_servers} reachable again after "
                      f"{time.monotonic() - self._unreachable_since:.0f} s")
            self._unreachable_since = None

    def run(self, *, until_idle: bool = False, max_seconds: float | None = None,
            assignment_timeout: float = 60) -> dict:
        old = {s: signal.signal(s, self.stop) for s in (signal.SIGTERM, signal.SIGINT)}
        # Millions of short-lived dicts per minute: the default thresholds run a full collection
        # every few batches for nothing (records hold no reference cycles). ~10 % of the loop.
        gc_thresholds = gc.get_threshold()
        gc.freeze()
        gc.set_threshold(200_000, 50, 100)
        started = time.monotonic()
        last_report = started
        self._until_idle = until_idle
        try:
            self._connect()
            unassigned_since = time.monotonic()
            while not self._stop:
                polled = self.consumer.poll(timeout_ms=200)
                if self._fatal is not None:
                    break
                for tp, recs in polled.items():
                    buf = self.buffers[tp]
                    if not buf.records:
                        buf.first_at = time.monotonic()
                    buf.records.extend(recs)
                    buf.nbytes += sum(r.serialized_value_size for r in recs)
                self._flush_due()
                if isinstance(self.sink, SinkProcess):
                    self.sink.pump()
                now = time.monotonic()
                if now - last_report >= 10:
                    self._measure_lag()
                    self.echo(self.progress_line())
                    last_report = now
                if max_seconds is not None and now - started > max_seconds:
                    break
                if until_idle and not polled:
                    assigned = self.consumer.assignment()
                    if not assigned:
                        # no assignment while the broker is down is the broker's fault, not the group's
                        if not self._tcp_up():
                            time.sleep(min(self._broker_down("waiting for partitions", NoBrokerListening(
                                f"no broker accepts connections at {self.cfg.kafka.bootstrap_servers}")), 2.0))
                            unassigned_since = time.monotonic()
                            continue
                        self._broker_back()
                        if now - unassigned_since > assignment_timeout:
                            raise O2PError(f"no partitions were assigned to capture within {assignment_timeout:.0f} s "
                                           f"(group {self.group_id}): is another capture holding them all?")
                        continue
                    unassigned_since = time.monotonic()
                    if self._caught_up(assigned):
                        break
            if self._fatal is not None:
                raise self._fatal
            self._flush_due(force=True)
            if isinstance(self.sink, SinkProcess):
                self.sink.drain()
            self._commit_landed()
            return self.summary()
        finally:
            gc.set_threshold(*gc_thresholds)
            gc.unfreeze()
            for s, h in old.items():
                signal.signal(s, h)
            if self.consumer is not None:   # first: closing revokes, and revocation lands and releases
                try:                            # through the sink, so the sink must be open
                    self.consumer.close(autocommit=False)
                except Exception as exc:   # noqa: BLE001 - the error that stopped us is the one to report
                    log.warning("closing the consumer: %s", exc)
            if self.sink is not None:
                try:
                    self.sink.close()
                except Exception as exc:   # noqa: BLE001
                    log.warning("closing the sink: %s", exc)

    def _tcp_up(self) -> bool:
        from streaming.broker import listening

        return listening(self.cfg)

    def _measure_lag(self) -> None:
        try:
            assigned = list(self.consumer.assignment())
            ends = self.consumer.end_offsets(assigned, timeout_ms=5000)   # lag never blocks landing long
            for tp in assigned:
                self.lag[(tp.topic, tp.partition)] = max(0, ends[tp] - self.consumer.position(tp))
        except Exception as exc:   # lag is for operators; never stop capture over it
            log.warning("could not measure lag: %s", exc)

    def progress_line(self) -> str:
        c = sum(s.consumed for s in self.stats.values())
        landed = sum(s.landed for s in self.stats.values())
        d = sum(s.dead_lettered for s in self.stats.values())
        lag = f", lag {sum(self.lag.values())}" if self.lag else ""
        return f"capture: consumed {c}, landed {landed}, dead letters {d}{lag}"

    def summary(self) -> dict:
        return {f"{t}[{p}]": vars(s).copy() for (t, p), s in sorted(self.stats.items())}
