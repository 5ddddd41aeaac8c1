"""The Kafka side of capture (`o2p capture`): the consumer group, a buffer per partition, the
flush policy, offset commits (step 5 of the protocol in `streaming.capture`), lag and progress,
and the run loop. Landing itself is the sink's (`streaming.capture.sink`), here or in its own
process (`streaming.capture.sink_process`)."""

from __future__ import annotations

import gc
import logging
import signal
import time
from collections import defaultdict
from dataclasses import dataclass, field
from operator import attrgetter

from o2p.config import Config
from o2p.errors import O2PError
from o2p.layout import topic_tables
from streaming.capture import stop_signals
from streaming.capture.broker_waits import (
    UNREACHABLE,
    BrokerOutage,
    NoBrokerListening,
    wait_for_topics,
)
from streaming.capture.kafka_rejoin_fix import sticky_rejoin
from streaming.capture.sink import Batch, PartitionStats, Sink
from streaming.capture.sink_process import SinkProcess
from streaming.client_settings import RECONNECT_BACKOFF_MAX_MS

log = logging.getLogger("o2p.capture")
_VALUE_SIZE = attrgetter("serialized_value_size")


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
        self.topics = list(topic_tables(cfg.kafka.topics))
        self.group_id = group_id or cfg.kafka.consumer_group
        self.buffers: dict = defaultdict(_Buffer)
        self.stats: dict = defaultdict(PartitionStats)
        self.lag: dict = {}         # (topic, partition) → messages behind the log end, not landed yet
        self.committed: dict = {}   # (topic, partition) → offset the group's commit holds (confirmed)
        self._in_flight: dict = {}  # (topic, partition) → (offset, when sent) of a commit not answered yet
        self._caught_up_at = 0.0    # when `_commit_behind` last looked
        self._commit_failures = 0   # failed commits since the last success (logged once each streak)
        self._probed = 0.0          # when the broker's TCP port was last probed (idle polls only)
        self._ends_asked = -10.0    # when `_caught_up` last asked the broker for log ends
        self.freshness_ms: list[int] | None = None   # set to a list to record publish→landed latency
        self.seconds: dict[str, float] = defaultdict(float)   # wall time per step of the loop (bench)
        self.sink_seconds: dict[str, float] = {}               # the sink's own, as of its last batch
        self._stop = False
        self._fatal: BaseException | None = None   # raised by the IO thread's listener, re-raised here
        self._unassigned_since = 0.0   # (until-idle) since when no partition has been assigned
        self.outage = BrokerOutage(cfg, lambda line: self.echo(line))   # give_up: --until-idle (set by run)
        self.consumer = None
        self.sink = None

    # ---- kafka -------------------------------------------------------------
    def _connect(self) -> None:
        from kafka import ConsumerRebalanceListener, KafkaConsumer

        capture = self

        class Listener(ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked):
                capture._on_revoked(revoked)

            def on_partitions_assigned(self, assigned):
                capture._on_assigned(assigned)

        if self.cfg.capture.sink_process:
            self.sink = SinkProcess(self.cfg, give_up=self.outage.give_up)
            self.sink.on_landed = self._landed
        else:
            self.sink = Sink(self.cfg, give_up=self.outage.give_up)
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
            reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS,   # back within seconds of the broker
        ))
        if self.consumer is None:   # stopped while connecting
            return
        sticky_rejoin(self.consumer)
        self._reachable("waiting for the topics",
                        lambda: wait_for_topics(self.consumer, self.topics, stopped=lambda: self._stop))
        self.consumer.subscribe(self.topics, listener=Listener())

    # The rebalance listener's two halves. They run on kafka-python's IO thread, which reports an
    # exception only as "User rebalance callback throws an error": a failure (a full disk, a dead
    # sink) is kept and raised by the main loop instead, with its own words.
    def _on_revoked(self, revoked) -> None:
        if self._fatal is not None:
            return
        try:
            for tp in revoked:   # land what we hold before another process takes over
                self._flush(tp)
                self.sink.release(tp.topic, tp.partition)
                self.lag.pop((tp.topic, tp.partition), None)
                self.committed.pop((tp.topic, tp.partition), None)
                self._in_flight.pop((tp.topic, tp.partition), None)
        except BaseException as exc:   # noqa: BLE001 - re-raised by the main loop
            self._fail(exc)

    def _on_assigned(self, assigned) -> None:
        if self._fatal is not None:
            return
        try:
            for tp in assigned:
                nxt, stats = self.sink.assign(tp.topic, tp.partition)
                self.stats[(tp.topic, tp.partition)] = stats
                self.committed.pop((tp.topic, tp.partition), None)   # unknown: `_commit_behind` sets it
                if nxt is not None:
                    self.consumer.seek(tp, nxt)
        except BaseException as exc:   # noqa: BLE001 - re-raised by the main loop
            self._fail(exc)
            return
        self.echo(f"capture: assigned {', '.join(f'{t.topic}[{t.partition}]' for t in sorted(assigned)) or 'nothing'}")

    def _landed(self, topic: str, partition: int, result: dict) -> None:
        """A batch is durable in the landing zone: take its counts and commit its offset."""
        self.stats[(topic, partition)] = result["stats"]
        self.sink_seconds = result.get("seconds", self.sink_seconds)
        if self.freshness_ms is not None and result["freshness"]:
            self.freshness_ms.extend(result["freshness"])
        # Asynchronous: this also runs inside the revocation listener, on kafka-python's IO thread,
        # where a blocking commit is refused. The state file is the truth; the group's committed
        # offset is what lag tools (kafka-consumer-groups) show. A commit that fails (broker down,
        # group rebalanced) is sent again by `_commit_behind` until it is confirmed.
        self._commit_async({(topic, partition): result["next_offset"]})

    def _commit_async(self, offsets: dict) -> None:
        from kafka.structs import OffsetAndMetadata, TopicPartition

        sent = time.monotonic()
        for key, off in offsets.items():
            self._in_flight[key] = (off, sent)

        def done(_offsets, response):   # run by kafka-python inside a later poll()/commit()
            for key, off in offsets.items():
                if self._in_flight.get(key, (None,))[0] == off:
                    del self._in_flight[key]
            if isinstance(response, Exception):
                self._commit_failed(offsets, response)
            else:
                for key, off in offsets.items():
                    self.committed[key] = max(off, self.committed.get(key, off))
                self._commit_failures = 0

        try:
            self.consumer.commit_async({TopicPartition(t, p): OffsetAndMetadata(o, "", -1)
                                        for (t, p), o in offsets.items()}, callback=done)
        except Exception as exc:   # noqa: BLE001 - retried by _commit_behind
            done(None, exc)

    def _commit_failed(self, offsets, exc: BaseException) -> None:
        self._commit_failures += 1
        if self._commit_failures == 1:   # once per streak: a long outage fails every retry
            log.warning("offset commit %s failed (state files are authoritative; retried until it "
                        "succeeds): %s: %s", offsets, type(exc).__name__, exc)

    def commits_behind(self) -> dict:
        """Owned partitions whose landed next offset the group's commit does not hold yet."""
        assigned = {(tp.topic, tp.partition) for tp in self.consumer.assignment()}
        return {key: s.next_offset for key, s in self.stats.items()
                if key in assigned and s.next_offset is not None and self.committed.get(key) != s.next_offset}

    def _commit_behind(self, now: float) -> None:
        """Bring the group's committed offsets to the landed state: once a second, one asynchronous
        commit of every owned partition whose landed offset the group does not hold and that no
        commit is waiting for (one unanswered for 10 s is sent again), so a failed commit is
        retried and even an idle capture's committed offsets reach the log end once the broker
        answers again."""
        if now - self._caught_up_at < 1.0:
            return
        self._caught_up_at = now
        behind = {key: off for key, off in self.commits_behind().items()
                  if self._in_flight.get(key, (None,))[0] != off or now - self._in_flight[key][1] > 10}
        if behind:
            self._commit_async(behind)

    def _commit_landed(self, timeout_s: float = 5.0) -> None:
        """Commit every owned partition's landed position, blocking (main thread only), retried for
        up to `timeout_s` (a clean exit leaves the group's offsets at the landed state if it can)."""
        from kafka.structs import OffsetAndMetadata, TopicPartition

        deadline = time.monotonic() + timeout_s
        while True:
            behind = self.commits_behind()
            if not behind:
                return
            try:
                self.consumer.commit({TopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in behind.items()},
                                     timeout_ms=max(1000, int((deadline - time.monotonic()) * 1000)))
                self.committed.update(behind)
                return
            except Exception as exc:   # noqa: BLE001 - the state files are the truth
                if time.monotonic() >= deadline:
                    log.warning("offset commit %s failed at exit: %s: %s; the group's committed offsets lag "
                                "the landed state until capture runs again", behind, type(exc).__name__, exc)
                    return
                time.sleep(0.5)

    def _flush(self, tp) -> None:
        buf = self.buffers.pop(tp, None)
        if not buf or not buf.records:
            return
        fresh = self.freshness_ms is not None
        batch = Batch.of(buf.records)
        if isinstance(self.sink, SinkProcess):
            self.sink.land(tp.topic, tp.partition, tuple(batch), fresh)
        else:
            self.sink.track_freshness = fresh
            result = self.sink.land(tp.topic, tp.partition, batch)
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

    def _reachable(self, doing: str, call):
        """`call()`, retried with backoff while the broker is unreachable (see BrokerOutage); None
        once a stop was requested."""
        while not self._stop:
            try:
                if not self._tcp_up():   # kafka-python's metadata calls can block without bound
                    raise NoBrokerListening.at(self.cfg)
                result = call()
            except UNREACHABLE as exc:
                if self._stop:
                    return None
                self._sleep(self.outage.down(doing, exc))
                continue
            self.outage.back()
            return result
        return None

    def _sleep(self, seconds: float) -> None:
        """Sleep, but wake up for a stop request within 0.1 s."""
        end = time.monotonic() + seconds
        while not self._stop and time.monotonic() < end:
            time.sleep(min(0.1, end - time.monotonic()))

    def _position(self, tp) -> int | None:
        """The consumer's position, without a network round trip (None while it is not known)."""
        try:
            return self.consumer.position(tp, timeout_ms=0)
        except Exception:   # noqa: BLE001 - revoked meanwhile, or not fetched yet
            return None

    def _caught_up(self, assigned) -> bool:
        """Whether every assigned partition is at its log end, as the last fetch response's high
        watermark says (kafka-python keeps it per partition): no request of its own, so it never
        holds up polling, committing or landing.

        A partition no fetch response has mentioned since it was assigned has no high watermark,
        and one at its log end may never be mentioned: when a rebalance hands a member back the
        partitions it had, at the same offsets, the broker's incremental fetch session (KIP-227)
        leaves the unchanged ones out of every response (capture --until-idle then never ended,
        CI 2026-12-02, after a broker restart). For those alone the log ends are asked for
        (ListOffsets, at most 1 s, once every 2 s), only here, where polls came back empty and
        there is nothing to land."""
        unknown = {}   # partition → position, for those with no high watermark
        for tp in assigned:
            end, pos = self.consumer.highwater(tp), self._position(tp)
            if pos is None or (end is not None and pos < end):
                return False
            if end is None:
                unknown[tp] = pos
        if not unknown:
            return True
        now = time.monotonic()
        if now - self._ends_asked < 2.0:
            return False
        self._ends_asked = now
        try:
            ends = self.consumer.end_offsets(list(unknown), timeout_ms=1000)
        except Exception as exc:   # noqa: BLE001 - not known yet: asked again in 2 s
            log.debug("log ends of %s not known: %s", list(unknown), exc)
            return False
        return all(tp in ends and pos >= ends[tp] for tp, pos in unknown.items())

    def run(self, *, until_idle: bool = False, max_seconds: float | None = None,
            assignment_timeout: float = 60) -> dict:
        old = {s: signal.signal(s, self.stop) for s in (signal.SIGTERM, signal.SIGINT)}
        if stop_signals.received() is not None:   # a SIGTERM/SIGINT during start-up: stop at once
            self._stop = True
        # Millions of short-lived dicts per minute: the default thresholds run a full collection
        # every few batches for nothing (records hold no reference cycles). ~10 % of the loop.
        gc_thresholds = gc.get_threshold()
        gc.freeze()
        gc.set_threshold(200_000, 50, 100)
        started = time.monotonic()   # max_seconds counts the connection too
        self.outage.give_up = until_idle
        try:
            if not self._stop:
                self._connect()
            if self.consumer is not None:
                self._loop(started, until_idle, max_seconds, assignment_timeout)
            if self._fatal is not None:
                raise self._fatal
            if self.consumer is not None:
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
            self._close()

    def _loop(self, started: float, until_idle: bool, max_seconds: float | None,
              assignment_timeout: float) -> None:
        """Poll, buffer, flush, commit and report until stopped, failed, out of time, or
        (until_idle) caught up with every assigned partition. Nothing here waits on the broker
        beyond the poll's 200 ms: lag comes from the fetch responses, a failed commit is sent
        again later, and an unreachable broker is noticed by a TCP probe of at most 0.5 s a
        second while polls come back empty (and under until_idle, a log end no fetch response
        gave is asked for, at most 1 s every 2 s, only while polls come back empty)."""
        last_report = started
        self._unassigned_since = time.monotonic()
        while not self._stop:
            t0 = time.perf_counter()
            try:
                polled = self.consumer.poll(timeout_ms=200)
            except UNREACHABLE as exc:   # the coordinator lookup fails while the broker is down
                polled = {}
                self._probed = time.monotonic()
                self._sleep(min(self.outage.down("polling", exc), 1.0))
            if self._fatal is not None:
                break
            t1 = time.perf_counter()
            self._buffer(polled)
            self._flush_due()
            if isinstance(self.sink, SinkProcess):
                self.sink.pump()
            sec = self.seconds
            sec["poll"] += t1 - t0
            sec["buffer, hand over, land"] += time.perf_counter() - t1
            now = time.monotonic()
            if polled:
                self.outage.back()
            elif now - self._probed >= 1.0:
                self._probed = now
                if self._tcp_up():
                    self.outage.back()
                else:   # says so every 5 s; under --until-idle gives up after the configured time
                    self.outage.down("polling", NoBrokerListening.at(self.cfg))
            self._commit_behind(now)
            if now - last_report >= 10:
                self._measure_lag()
                self.echo(self.progress_line())
                last_report = now
            if max_seconds is not None and now - started > max_seconds:
                break
            if until_idle and not polled and self.outage.since is None \
                    and self._idle_and_caught_up(now, assignment_timeout):
                break

    def _buffer(self, polled: dict) -> None:
        for tp, recs in polled.items():
            buf = self.buffers[tp]
            if not buf.records:
                buf.first_at = time.monotonic()
            buf.records.extend(recs)
            buf.nbytes += sum(map(_VALUE_SIZE, recs))

    def _idle_and_caught_up(self, now: float, assignment_timeout: float) -> bool:
        """A poll returned nothing: whether every assigned partition is at its log end. Having no
        partitions is an error after `assignment_timeout` (unless the broker is down)."""
        assigned = self.consumer.assignment()
        if not assigned:
            if now - self._unassigned_since > assignment_timeout:
                raise O2PError(f"no partitions were assigned to capture within {assignment_timeout:.0f} s "
                               f"(group {self.group_id}): is another capture holding them all?")
            return False
        self._unassigned_since = time.monotonic()
        return self._caught_up(assigned)

    def _close(self) -> None:
        if self.consumer is not None:   # first: closing revokes, and revocation lands and releases
            try:                            # through the sink, so the sink must be open
                self.consumer.close(autocommit=False)
            except Exception as exc:   # noqa: BLE001 - the error that stopped us is the one to report
                log.warning("closing the consumer: %s", exc)
            self.consumer = None
        if self.sink is not None:
            try:
                self.sink.close()
            except Exception as exc:   # noqa: BLE001
                log.warning("closing the sink: %s", exc)

    def _tcp_up(self) -> bool:
        from streaming.broker import listening

        return listening(self.cfg)

    def _measure_lag(self) -> None:
        """Messages not landed yet per owned partition: the high watermark of the last fetch
        response (kept by kafka-python, no request) minus the landed next offset."""
        lag = {}
        for tp in self.consumer.assignment():
            end = self.consumer.highwater(tp)
            s = self.stats.get((tp.topic, tp.partition))
            landed = s.next_offset if s is not None and s.next_offset is not None else self._position(tp)
            if end is not None and landed is not None:
                lag[(tp.topic, tp.partition)] = max(0, end - landed)
        self.lag = lag

    def progress_line(self) -> str:
        c = sum(s.consumed for s in self.stats.values())
        landed = sum(s.landed for s in self.stats.values())
        d = sum(s.dead_lettered for s in self.stats.values())
        lag = f", lag {sum(self.lag.values())}" if self.lag else ""
        line = f"capture: consumed {c}, landed {landed}, dead letters {d}{lag}"
        if self.outage.since is not None:
            line += (f"; broker {self.cfg.kafka.bootstrap_servers} unreachable for "
                     f"{time.monotonic() - self.outage.since:.0f} s, waiting")
        else:
            behind = self.commits_behind() if self.consumer is not None else {}
            if behind:
                line += f"; group offsets of {len(behind)} partition(s) not committed yet (retrying)"
        return line

    def summary(self) -> dict:
        return {f"{t}[{p}]": vars(s).copy() for (t, p), s in sorted(self.stats.items())}
