"""The file side of capture: recovery on assignment, and landing one batch of one partition
(steps 1-4 of the protocol in `streaming.capture`). It runs in the capture process or in its
sink process (`streaming.capture.sink_process`); it never touches the consumer group."""

from __future__ import annotations

import json
import logging
import os
import time
from bisect import bisect_left
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq

from o2p import layout
from o2p.config import Config
from o2p.fsio import fsync_dir, write_json_atomic
from o2p.layout import SCHEMAS, file_name, topic_tables
from o2p.timeutil import US_PER_SECOND, shanghai_date
from streaming.capture.dead_letter_topic import DeadLetterTopic
from streaming.capture.partition_locks import PartitionLocks
from streaming.contracts import ContractError, validate_event
from streaming.privacy import IpMasker, ip_hasher

log = logging.getLogger("o2p.capture")
STRUCTS = {table: pa.struct(list(schema)) for table, schema in SCHEMAS.items()}
# The coordinates every row of one file shares are added as whole columns, not set in each row.
CONSTANT = ("_topic", "_partition", "_captured_at_us")
ROW_STRUCTS = {table: pa.struct([f for f in schema if f.name not in CONSTANT]) for table, schema in SCHEMAS.items()}
# A batch of a backlog holds ~30 event dates, so ~30 files, and as many folders to fsync after the
# renames. fsync releases the GIL and ext4 commits concurrent fsyncs in one journal transaction:
# fsynced all at once they took 3-8 ms where one after another took 40-70 ms (30 files, 2026-12).
FSYNC_THREADS = 8
# Parquet dictionary-encodes only the columns whose values repeat within a file (enums, SKUs,
# promoters, user agents, the per-file constants). For ids, timestamps and hashes, nearly all
# distinct, building a dictionary is wasted work before the writer falls back to plain: 7-25 %
# less encoding time and 7-23 % smaller files (clicks, orders, refunds, 2026-12). Readers see no
# difference (an encoding of the file, not of the data).
DICTIONARY_COLUMNS = ["event_type", "event_date", "source", "schema_version", "channel", "sku_id", "promoter_id",
                      "user_agent", "currency", "_topic", "_partition", "_captured_at_us", "capture_date", "reason"]


@dataclass
class PartitionStats:
    consumed: int = 0
    landed: int = 0
    dead_lettered: int = 0
    next_offset: int | None = None
    gaps: list = field(default_factory=list)


class Rec(NamedTuple):
    """What the sink needs of a Kafka record."""
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int


class Batch(NamedTuple):
    """One partition's records as four parallel lists, in offset order: what the consumer sends
    (four flat lists pickle faster than 50k tuples, and no tuple is built per record)."""
    offsets: list[int]
    keys: list
    values: list
    timestamps: list[int]

    _fields_of_records = ("offset", "key", "value", "timestamp")

    @classmethod
    def of(cls, records) -> Batch:
        """From Kafka records or Recs (anything with offset, key, value, timestamp)."""
        return cls(*(list(map(attrgetter(name), records)) for name in cls._fields_of_records))

    def since(self, i: int) -> Batch:
        return Batch(self.offsets[i:], self.keys[i:], self.values[i:], self.timestamps[i:])


Renames = list[tuple[str, str]]   # (tmp file, final file), as the state file lists them


class Prepared(NamedTuple):
    """A validated batch and the state file that will commit it (see Sink.prepare)."""
    topic: str
    partition: int
    first: int
    last: int
    by_date: dict   # event date → its rows as an Arrow table
    dead: list
    now_us: int
    state: dict
    timestamps: list | None   # for freshness, when the consumer measures it


class Sink:
    """Partition locks, recovery, and landing a batch (steps 1-4 of the protocol)."""

    def __init__(self, cfg: Config, give_up: bool = True):
        self.cfg = cfg
        self.table_of_topic = topic_tables(cfg.kafka.topics)
        self.landing = cfg.landing_path
        self.tmp = layout.tmp_dir(self.landing)
        self.state_dir = layout.state_dir(self.landing)
        self.hasher = ip_hasher(cfg)
        self.masker = IpMasker(self.hasher)     # dead letters only: see streaming.privacy
        self.stats: dict = defaultdict(PartitionStats)
        self.ahead: dict = {}   # (topic, partition) → its stats once every prepared batch is committed
        # the capture (consumer) process owns the locks, also when this runs in its sink process
        self.locks = PartitionLocks(self.landing, cfg.capture.lock_timeout_seconds, os.getpid())
        self.dead_letters = DeadLetterTopic(cfg, give_up)   # give_up: see DeadLetterTopic.send
        self.track_freshness = False
        self.seconds: dict[str, float] = defaultdict(float)   # wall time per step (bench/capture.py)
        self._fsyncs = ThreadPoolExecutor(FSYNC_THREADS, thread_name_prefix="o2p-fsync")

    @property
    def dlq(self):
        """The dead-letter topic's producer (tests put an in-memory one here)."""
        return self.dead_letters.producer

    @dlq.setter
    def dlq(self, producer) -> None:
        self.dead_letters.producer = producer

    def close(self) -> None:
        self.locks.release_all()
        self.dead_letters.close()
        self._fsyncs.shutdown()

    # ---- ownership ---------------------------------------------------------
    def _state_path(self, topic: str, partition: int) -> Path:
        return layout.state_file(self.landing, topic, partition)

    def acquire(self, topic: str, partition: int) -> None:
        """Take the partition's lock, waiting for a previous owner to finish its last batch."""
        self.locks.acquire(topic, partition)

    def release(self, topic: str, partition: int) -> None:
        self.ahead.pop((topic, partition), None)
        self.locks.release(topic, partition)

    def recover(self, topic: str, partition: int) -> int | None:
        """Roll a committed batch forward and drop uncommitted files; return the next offset."""
        self.ahead.pop((topic, partition), None)
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
    def land(self, topic: str, partition: int, records) -> dict | None:
        """Land one batch of one partition (a Batch, or a list of records); returns what the consumer
        commits (None: nothing to)."""
        batch = records if isinstance(records, Batch) else Batch.of(records)
        prepared = self.prepare(topic, partition, batch, self.track_freshness)
        return None if prepared is None else self.commit(prepared)

    def prepare(self, topic: str, partition: int, batch: Batch, fresh: bool = False) -> Prepared | None:
        """Step 1: validate a batch and compute the state file that will commit it. The sink process
        validates the next batch while its writer thread commits this one (`commit`, in order):
        `ahead` holds each partition's figures once every prepared batch is committed."""
        if not batch.offsets:
            return None
        if (topic, partition) not in self.locks:
            log.warning("not landing %s[%d]: this process no longer owns it", topic, partition)
            return None
        key = (topic, partition)
        ahead = self.ahead.get(key) or self.stats[key]
        batch, gaps = self._from_next_offset(topic, partition, ahead, batch)
        if not batch.offsets:
            return None
        first, last = batch.offsets[0], batch.offsets[-1]
        now_us = time.time_ns() // 1000
        t0 = time.perf_counter()
        rows, dead = self._validate(topic, partition, batch, now_us)                    # step 1
        t1 = time.perf_counter()
        by_date = tables_by_date(self.table_of_topic[topic], rows,
                                 {"_topic": topic, "_partition": partition, "_captured_at_us": now_us})
        del rows   # freed here, not by the writer thread
        self.seconds["validate"] += t1 - t0
        self.seconds["rows to Arrow"] += time.perf_counter() - t1
        landed = sum(len(r) for r in by_date.values())
        state = {
            "topic": topic, "partition": partition, "next_offset": last + 1,
            "pending": [], "gaps": ahead.gaps + gaps,
            "consumed": ahead.consumed + len(batch.offsets), "landed": ahead.landed + landed,
            "dead_lettered": ahead.dead_lettered + len(dead), "updated_at_us": now_us,
        }
        self.ahead[key] = PartitionStats(state["consumed"], state["landed"], state["dead_lettered"], last + 1,
                                         state["gaps"])
        return Prepared(topic, partition, first, last, by_date, dead, now_us, state,
                        batch.timestamps if fresh else None)

    def commit(self, p: Prepared) -> dict:
        """Steps 2-4 of a prepared batch: files to `_tmp/` and fsynced, the state file (the commit
        point), the renames. Batches of one partition are committed in the order prepared."""
        t1 = time.perf_counter()
        renames = self._write_tmp_files(p.topic, p.partition, p.first, p.last, p.by_date, p.dead)  # step 2
        t2 = time.perf_counter()
        state = {**p.state, "pending": renames}
        write_json_atomic(self._state_path(p.topic, p.partition), state)   # step 3: the commit point
        self._rename(renames)                                                 # step 4
        t3 = time.perf_counter()
        sec = self.seconds
        sec["write + fsync files"] += t2 - t1
        sec["state file + renames"] += t3 - t2
        fresh = self._freshness(p.timestamps)
        st = self.stats[(p.topic, p.partition)]
        st.consumed, st.landed, st.dead_lettered, st.next_offset, st.gaps = (
            state["consumed"], state["landed"], state["dead_lettered"], p.last + 1, state["gaps"])
        log.info("landed %s[%d] offsets %d-%d: %d rows, %d dead letters", p.topic, p.partition, p.first, p.last,
                 sum(len(r) for r in p.by_date.values()), len(p.dead))
        return {"next_offset": p.last + 1, "stats": st, "freshness": fresh,   # step 5 is the consumer's
                "seconds": dict(sec)}

    @staticmethod
    def _from_next_offset(topic: str, partition: int, st: PartitionStats, batch: Batch) -> tuple[Batch, list]:
        """The records from the state file's next offset on (those before it are landed already: a
        re-delivery), and the gap before the first of them, if offsets were never captured."""
        gaps = []
        if st.next_offset is not None:
            if batch.offsets[0] < st.next_offset:      # already landed (a re-delivery): skip
                batch = batch.since(bisect_left(batch.offsets, st.next_offset))
                if not batch.offsets:
                    return batch, gaps
            if batch.offsets[0] > st.next_offset:
                gaps.append([st.next_offset, batch.offsets[0] - 1])
                log.error("%s[%d]: offsets %d-%d were never captured (deleted by retention?); recorded "
                          "as a gap in the state file", topic, partition, st.next_offset, batch.offsets[0] - 1)
        return batch, gaps

    def _validate(self, topic: str, partition: int, batch: Batch,
                  now_us: int) -> tuple[dict[str, list[dict]], list[dict]]:
        """Step 1: each record → a landing row (grouped by event date) or a dead letter. A row gets
        its `_offset` here; the coordinates shared by the whole file are added as columns."""
        table = self.table_of_topic[topic]
        max_future = self.cfg.quality.max_future_seconds
        latest_us = now_us + max_future * US_PER_SECOND     # a later occurred_at is a dead letter
        by_date: dict[str, list[dict]] = defaultdict(list)
        dead: list[dict] = []
        max_bytes = self.cfg.capture.max_message_bytes
        for i, (offset, value) in enumerate(zip(batch.offsets, batch.values, strict=True)):
            try:
                if value is None:
                    raise ContractError("empty message (no value)")
                if len(value) > max_bytes:
                    raise ContractError(f"message of {len(value)} bytes exceeds capture.max_message_bytes ({max_bytes})")
                row = validate_event(value, table, self.hasher, latest_us, max_future)
            except ContractError as exc:
                dead.append(self._dead_letter(topic, partition, Rec(offset, batch.keys[i], value, 0), now_us, exc))
                continue
            row["_offset"] = offset
            by_date[row["event_date"]].append(row)
        return by_date, dead

    def _dead_letter(self, topic: str, partition: int, rec: Rec, now_us: int, exc: ContractError) -> dict:
        """A dead letter's row: no raw IP at rest, in the Parquet row nor on the dead-letter topic."""
        mask = self.masker
        return {"_topic": topic, "_partition": partition, "_offset": rec.offset,
                "_captured_at_us": now_us, "capture_date": shanghai_date(now_us).isoformat(),
                "key": mask.bytes(rec.key), "raw": mask.bytes(rec.value), "reason": mask.text(str(exc))}

    def _write_tmp_files(self, topic: str, partition: int, first: int, last: int,
                         by_date: dict[str, pa.Table], dead: list[dict]) -> Renames:
        """Step 2: one file per event date and one of dead letters to `_tmp/`, fsynced; the dead
        letters also to their topic. Returns the renames the commit point will list. Each file is
        fsynced by the pool while the next one is encoded; all of them, and `_tmp/` itself, are
        durable before this returns."""
        table = self.table_of_topic[topic]
        name = file_name(topic, partition, first, last)
        renames: Renames = []
        fsyncs = []
        try:
            self.tmp.mkdir(parents=True, exist_ok=True)
            for day, rows in sorted(by_date.items()):
                tmp = self._write_tmp(rows, f"{topic}+{partition}+{first}+{day}.parquet", fsyncs)
                renames.append((str(tmp), str(self.landing / table / f"event_date={day}" / name)))
            if dead:
                rows = pa.Table.from_struct_array(pa.array(dead, type=STRUCTS["deadletters"]))
                tmp = self._write_tmp(rows, f"{topic}+{partition}+{first}+dead.parquet", fsyncs)
                day = dead[0]["capture_date"]
                renames.append((str(tmp), str(self.landing / "deadletters" / f"capture_date={day}" / name)))
                self.dead_letters.send(topic, partition, dead)
            fsyncs.append(self._fsyncs.submit(fsync_dir, self.tmp))
        except BaseException:
            wait(fsyncs)   # none runs on behind the failure being reported
            raise
        self._wait_for(fsyncs)
        return renames

    def _wait_for(self, fsyncs: list) -> None:
        """Wait for every fsync submitted, then raise the first failure."""
        t0 = time.perf_counter()
        wait(fsyncs)
        self.seconds["  of which waiting for fsyncs"] += time.perf_counter() - t0
        for f in fsyncs:
            f.result()

    def _write_tmp(self, tbl: pa.Table, name: str, fsyncs: list) -> Path:
        """One Parquet file in `_tmp/`; its fsync (and close) is submitted to the pool and appended
        to `fsyncs`."""
        path = self.tmp / name
        with _naming(path):
            fh = pa.OSFile(str(path), "wb")   # Arrow's own file: its writes need no GIL (a Python file's do)
        try:
            with _naming(path):
                pq.write_table(tbl, fh, compression="zstd", use_dictionary=DICTIONARY_COLUMNS)
        except BaseException:
            fh.close()
            raise
        fsyncs.append(self._fsyncs.submit(_fsync_and_close, fh, path))
        self.seconds["  files written"] += 1
        return path

    def _rename(self, renames: Renames) -> None:
        """Step 4: the committed files to their final names, then their folders fsynced (at once)."""
        for tmp, final in renames:
            Path(final).parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
        self._wait_for([self._fsyncs.submit(fsync_dir, Path(d)) for d in {str(Path(f).parent) for _, f in renames}])

    @staticmethod
    def _freshness(timestamps: list[int] | None) -> list[int] | None:
        """Publish → landed latency of each record, in ms (when the consumer measures it)."""
        if timestamps is None:
            return None
        landed_ms = time.time_ns() // 1_000_000
        return [landed_ms - ts for ts in timestamps]


def tables_by_date(table: str, by_date: dict[str, list[dict]], constant: dict) -> dict[str, pa.Table]:
    """Landing rows grouped by event date → one Arrow table of `table`'s schema per date, its rows
    in the order given. `constant`: the columns every row shares (CONSTANT), whole columns rather
    than set in each row. The sink calls this where the batch was validated, so that its writer
    thread needs the GIL as little as possible (taking it back from the validating thread costs
    up to the switch interval each time): every date's rows go to one StructArray in one call
    (dicts → C++: 3× faster than Table.from_pylist, 2.4× than column lists), cut into zero-copy
    slices, one per date."""
    days = sorted(by_date)
    rows = [row for day in days for row in by_date[day]]
    part = pa.Table.from_struct_array(pa.array(rows, type=ROW_STRUCTS[table]))
    schema = SCHEMAS[table]
    whole = pa.Table.from_arrays(
        [pa.repeat(pa.scalar(constant[f.name], f.type), len(rows)) if f.name in constant else part.column(f.name)
         for f in schema], schema=schema)
    tables, start = {}, 0
    for day in days:
        tables[day] = whole.slice(start, len(by_date[day]))
        start += len(by_date[day])
    return tables


@contextmanager
def _naming(path: Path):
    """pyarrow and fsync name no file in their OSError: name it (a full disk says where)."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None and exc.errno is not None:
            raise OSError(exc.errno, os.strerror(exc.errno), str(path)) from exc
        raise


def _fsync_and_close(fh, path: Path) -> None:
    try:
        with _naming(path):
            os.fsync(fh.fileno())
    finally:
        fh.close()
