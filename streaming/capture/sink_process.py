"""The sink in a child process, so that validating and writing (the sink) and polling (the
consumer) use two cores; and the messages between the two processes.

The capture process sends `(op, topic, partition, ...)` and the sink process answers each in order
with `(reply, topic, partition, payload)`:

    ("land", topic, partition, columns, fresh)  → ("landed", topic, partition, what Sink.land returned)
    ("assign", topic, partition)                → ("assigned", topic, partition, (next offset, stats))
    ("release", topic, partition)               → ("released", topic, partition, None)
    ("stop",)                                   → (the sink process exits)
    anything that fails                         → ("error", None, None, (text, exit code, traceback))
"""

from __future__ import annotations

import gc
import os
import queue
import signal
import threading
import time
from collections import defaultdict

from o2p.config import Config
from o2p.errors import InputError, O2PError, operator_message
from streaming.capture.sink import Batch, Sink

STOP = {signal.SIGINT, signal.SIGTERM}


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
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP)  # blocked by the parent from before the exec
    gc.freeze()
    gc.set_threshold(200_000, 50, 100)
    sink = None
    try:
        sink = Sink(cfg, give_up=give_up)   # may fail too (no salt in prod, a full disk): said below
        sink.locks.owner_pid = parent_pid
        _serve(sink, conn)
    except EOFError:
        pass
    except BaseException as exc:
        _report(cfg, conn, exc)
    finally:
        if sink is not None:
            sink.close()


def _serve(sink: Sink, conn) -> None:
    """Answer the capture process's messages until it says stop. A batch is validated here while
    the writer thread writes, fsyncs and commits the one before (fsync and Parquet's encoding
    release the GIL), in the order received; assign, release and stop wait for the writer."""
    work: queue.Queue = queue.Queue(maxsize=2)
    failed: list[BaseException] = []
    send_lock = threading.Lock()

    def writer() -> None:
        while True:
            item = work.get()
            try:
                if item is None:
                    return
                if failed:
                    continue
                topic, partition, prepared = item
                result = None if prepared is None else sink.commit(prepared)
                with send_lock:
                    conn.send(("landed", topic, partition, result))
            except BaseException as exc:   # noqa: BLE001 - told to the capture process, which stops
                failed.append(exc)
                with send_lock:
                    _report(sink.cfg, conn, exc)
            finally:
                work.task_done()

    thread = threading.Thread(target=writer, name="o2p-sink-writer", daemon=True)
    thread.start()
    try:
        while True:
            msg = conn.recv()
            op = msg[0]
            if op == "land":
                _, topic, partition, columns, fresh = msg
                work.put((topic, partition, None if failed else sink.prepare(topic, partition, Batch(*columns), fresh)))
                continue
            work.join()       # every batch before this message is committed (or failed)
            if failed:        # said by the writer; the capture process stops
                return
            if op == "assign":
                conn.send(("assigned", msg[1], msg[2], sink.assign(msg[1], msg[2])))
            elif op == "release":
                sink.release(msg[1], msg[2])
                conn.send(("released", msg[1], msg[2], None))
            elif op == "stop":
                return
    finally:
        work.put(None)        # the writer finishes what it holds before the locks are let go
        thread.join()


def _report(cfg: Config, conn, exc: BaseException) -> None:
    """Tell the capture process why the sink stopped: in our own words, with the exit code."""
    import traceback

    if isinstance(exc, O2PError):   # our own words, and their exit code (2: bad config)
        text, code = (str(exc.args[0]) if exc.args else type(exc).__name__), exc.exit_code
    else:
        text, code = operator_message(exc, where=cfg.home_path) or (f"{type(exc).__name__}: {exc}", 1)
    try:
        conn.send(("error", None, None, (text, code, traceback.format_exc())))
    except OSError:
        pass


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
        # A Ctrl-C or a SIGTERM to the process group while the child starts up (before it ignores
        # them) would kill it: it starts with both blocked, and unblocks them once ignored.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP)
        try:
            self.proc.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        child.close()
        self.in_flight: list[tuple[str, int]] = []
        self.max_in_flight = max_in_flight
        self.failed: O2PError | None = None   # once the sink has failed, every call says why
        self.on_landed = None    # callback(topic, partition, result)
        self.seconds: dict[str, float] = defaultdict(float)   # bench/capture.py

    def _receive(self) -> tuple:
        if self.failed is not None:
            raise self.failed
        try:
            reply, topic, partition, payload = self.conn.recv()
        except (EOFError, OSError):
            self.proc.join(timeout=5)
            self.failed = O2PError(f"the capture sink process exited (code {self.proc.exitcode}); nothing it had "
                                   "not committed was landed: run capture again")
            raise self.failed from None
        if reply == "error":
            text, code, trace = payload
            # the sink's own words (a full disk: where, and what to do); its traceback goes to the log
            self.failed = (InputError if code == 2 else O2PError)(f"capture stopped: {text}", trace)
            raise self.failed
        if reply == "landed":
            self.in_flight.remove((topic, partition))
            if payload is not None:
                self.on_landed(topic, partition, payload)
        return reply, topic, partition, payload

    def pump(self) -> None:
        """Handle every answer that has arrived, without waiting."""
        while self.in_flight and self.conn.poll():
            self._receive()

    def land(self, topic: str, partition: int, records: tuple, fresh: bool) -> None:
        t0 = time.perf_counter()
        while len(self.in_flight) >= self.max_in_flight:    # bound the memory held in the pipe
            self._receive()
        t1 = time.perf_counter()
        self._send(("land", topic, partition, records, fresh))
        self.in_flight.append((topic, partition))
        self.seconds["waiting for the sink"] += t1 - t0
        self.seconds["sending to the sink"] += time.perf_counter() - t1

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
            reply, t, p, payload = self._receive()
            if reply != "landed" and (t, p) == (topic, partition):
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
