"""Dead letters an operator can read, hand to the producer team, fix and replay (`o2p deadletters`).

The landing zone's copy (`landing/deadletters/capture_date=D/`, exactly once per offset) is the one
read here; the dead-letter topic is for live consumers. A dead letter is named by its source
coordinates, `topic/partition/offset` (the key it has on the dead-letter topic too).

- `read(cfg, …)` lists them with their reason code (`streaming.contracts.reason_code`), the
  producer's `source` and `event_id` when the raw bytes are an event at all (else `unknown` and
  none), filtered by reason code, topic (name or landing table), source and capture date;
- `export_lines(...)` gives one JSON object per dead letter for the producer team: the coordinates,
  the reason, the raw message (text, or `raw_base64` when it is not UTF-8) and `event`, the parsed
  JSON object when there is one — what a fix edits (`jq '.event.lines |= …'`);
- `replay(cfg, path, by)` reads such lines back, fixed. The whole file is checked first (each
  `event` must now pass the contract, as the publisher checks it): one bad line and nothing is sent
  (exit 2, naming the line, the field and the rule). Then each event is published to its topic with
  its **own `event_id`** (headers `o2p.replay_of`: the dead letter, `o2p.replayed_by`), unless
  * its `event_id` is already in the landing zone (the producer retried, or an earlier replay was
    captured): sending it again would land a second copy, which staging would keep once (the same
    content) or report as an `event_id_conflict` (other content) — skipped, and said;
  * the same `event_id` with the same content was replayed before (not captured yet): skipped.
  Each replay sent is recorded, once the broker acknowledged it, in
  `$O2P_HOME/deadletters/replays.jsonl` (who, when, the dead letter, the `event_id`, the SHA-256 of
  the content and of the file; `outcome` `replayed`), and so is each dead letter skipped because its
  `event_id` had landed (`outcome` `already_landed`), so replaying a file twice sends nothing the
  second time.

A dead letter is **resolved** (`resolved(cfg)`) once a replay record names it and its `event_id` is in
the landing zone: the dead-letter ceiling (`quality.max_deadletter_share`, pipelines/lib/gates.py)
counts only unresolved ones, so a release held by a burst goes through once the burst is fixed,
replayed and captured — not merely replayed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from collections import Counter
from pathlib import Path

from o2p.config import Config
from o2p.errors import InputError
from o2p.layout import (
    TABLES,
    deadletter_files,
    deadletter_replays_file,
    landing_table,
    topic_tables,
)
from o2p.locks import exclusive
from streaming.contracts import REASONS, reason_code

SOURCES = ("storefront", "bot", "unknown")


def _parsed(raw: bytes | None) -> dict | None:
    if not raw:
        return None
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def read(cfg: Config, *, reason: str | None = None, topic: str | None = None, source: str | None = None,
         date: str | None = None) -> list[dict]:
    """The landed dead letters (oldest capture first), filtered. `topic`: a topic name or its
    landing table (clicks, orders, refunds); `reason`: a code of streaming.contracts.REASONS."""
    import pyarrow.parquet as pq

    if reason is not None and reason not in REASONS:
        raise InputError(f"--reason: {reason!r} is no reason code (one of {', '.join(REASONS)})")
    if source is not None and source not in SOURCES:
        raise InputError(f"--source: {source!r} is not one of {', '.join(SOURCES)}")
    tables = topic_tables(cfg.kafka.topics)
    if topic is not None and topic not in tables:
        named = {t: n for n, t in tables.items()}
        if topic not in named:
            raise InputError(f"--topic: {topic!r} is neither a topic of the config ({', '.join(tables)}) "
                             f"nor a landing table ({', '.join(TABLES)})")
        topic = named[topic]
    replayed = replays_by_dead_letter(cfg)
    out = []
    for path in deadletter_files(cfg.landing_path, date):
        for r in pq.read_table(path).to_pylist():
            if topic is not None and r["_topic"] != topic:
                continue
            code = reason_code(r["reason"] or "")
            if reason is not None and code != reason:
                continue
            event = _parsed(r["raw"])
            src = event.get("source") if event else None
            src = src if src in ("storefront", "bot") else "unknown"
            if source is not None and src != source:
                continue
            eid = event.get("event_id") if event else None
            coord = f"{r['_topic']}/{r['_partition']}/{r['_offset']}"
            out.append({
                "dead_letter": coord, "topic": r["_topic"], "table": tables.get(r["_topic"]),
                "partition": r["_partition"], "offset": r["_offset"], "capture_date": r["capture_date"],
                "captured_at_us": r["_captured_at_us"], "reason_code": code, "reason": r["reason"],
                "source": src, "event_id": eid if isinstance(eid, str) else None,
                "key": r["key"], "raw": r["raw"], "event": event, "replays": replayed.get(coord, []),
            })
    out.sort(key=lambda d: (d["captured_at_us"], d["topic"], d["partition"], d["offset"]))
    return out


def counts(cfg: Config) -> dict[str, Counter]:
    """Dead letters by source and by reason code (for `o2p capture --status`)."""
    by_source, by_reason = Counter(), Counter()
    for d in read(cfg):
        by_source[d["source"]] += 1
        by_reason[d["reason_code"]] += 1
    return {"source": by_source, "reason": by_reason}


def counts_by_table(cfg: Config) -> dict[str, dict[str, dict[str, int]]]:
    """Per landing table: its dead letters by source and by reason code (the landing assets'
    observations in the Dagster UI)."""
    out: dict[str, dict[str, Counter]] = {}
    for d in read(cfg):
        t = out.setdefault(d["table"] or d["topic"], {"source": Counter(), "reason": Counter()})
        t["source"][d["source"]] += 1
        t["reason"][d["reason_code"]] += 1
    return {t: {k: dict(sorted(c.items())) for k, c in v.items()} for t, v in out.items()}


def find(cfg: Config, coord: str) -> dict:
    for d in read(cfg):
        if d["dead_letter"] == coord:
            return d
    raise InputError(f"no dead letter {coord!r} in {cfg.landing_path} (name one as topic/partition/offset, "
                     "as `o2p deadletters list` prints it)")


def export_record(d: dict) -> dict:
    """One line of an export: what the producer team needs, and `event` for the fix."""
    rec = {"dead_letter": d["dead_letter"], "table": d["table"], "capture_date": d["capture_date"],
           "reason_code": d["reason_code"], "reason": d["reason"], "source": d["source"],
           "event_id": d["event_id"]}
    for name in ("key", "raw"):
        value = d[name]
        try:
            rec[name] = None if value is None else value.decode("utf-8")
        except UnicodeDecodeError:
            rec[f"{name}_base64"] = base64.b64encode(value).decode()
    rec["event"] = d["event"]
    return rec


def export_lines(rows: list[dict]) -> str:
    return "".join(json.dumps(export_record(d), ensure_ascii=False, sort_keys=False) + "\n" for d in rows)


# ---- replay ----------------------------------------------------------------------------------
def content_sha256(event: dict) -> str:
    return hashlib.sha256(json.dumps(event, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
                          .encode("utf-8")).hexdigest()


def replays(cfg: Config) -> list[dict]:
    path = deadletter_replays_file(cfg.home_path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def replays_by_dead_letter(cfg: Config) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in replays(cfg):
        if r.get("dead_letter"):
            out.setdefault(r["dead_letter"], []).append(r)
    return out


def resolved(cfg: Config) -> set[tuple[str, int, int]]:
    """The (topic, partition, offset) of every dead letter whose replay (or the producer's own
    resend, recorded by a replay as `already_landed`) is in the landing zone now."""
    recs = [r for r in replays(cfg) if r.get("dead_letter")]
    landed = landed_event_ids(cfg, {r["event_id"] for r in recs})
    out = set()
    for r in recs:
        if r["event_id"] in landed:
            topic, partition, offset = r["dead_letter"].rsplit("/", 2)
            out.add((topic, int(partition), int(offset)))
    return out


def landed_event_ids(cfg: Config, ids: set[str]) -> set[str]:
    """Which of `ids` are in the landing zone's event tables (any copy)."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    found: set[str] = set()
    if not ids:
        return found
    for table in TABLES:
        root = landing_table(cfg.landing_path, table)
        if not root.is_dir():
            continue
        got = ds.dataset(root, format="parquet").to_table(
            columns=["event_id"], filter=pc.field("event_id").isin(sorted(ids)))
        found.update(got.column("event_id").to_pylist())
    return found


def _checked_lines(path: Path) -> list[tuple[int, dict, dict]]:
    """Every line of a replay file as (line number, line, event), or InputError naming each bad line."""
    from streaming.producer import InvalidEvent, check

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the replay file: {exc}") from None
    good, problems = [], []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError as exc:
            problems.append(f"{path}:{i}: not JSON: {exc}")
            continue
        event = rec.get("event") if isinstance(rec, dict) else None
        if not isinstance(event, dict):
            problems.append(f"{path}:{i}: no `event` object to replay (a dead letter that is no JSON object "
                            "must be rebuilt as one by its producer)")
            continue
        try:
            check(event)
        except InvalidEvent as exc:
            problems.append(f"{path}:{i}: {exc.args[0]}")
            continue
        good.append((i, rec, event))
    if problems:
        raise InputError(f"{len(problems)} line(s) of {path} are not fixed yet (nothing was replayed):\n  "
                         + "\n  ".join(problems[:20]))
    return good


def replay(cfg: Config, path: Path, by: str, log=print) -> dict:
    """Publish the fixed events of an export file; see the module docstring. Returns the counts."""
    from streaming.producer import EventPublisher

    lines = _checked_lines(path)
    file_sha = hashlib.sha256(path.read_bytes()).hexdigest()
    with exclusive(cfg.home_path / "locks" / "deadletters-replay.lock", f"o2p deadletters replay {path}"):
        done = {(r["event_id"], r["sha256"]) for r in replays(cfg)}
        landed = landed_event_ids(cfg, {e["event_id"] for _, _, e in lines})
        todo, skipped, resolved_here = [], [], []
        seen_in_file: set[tuple[str, str]] = set()
        resolved_before = {r.get("dead_letter") for r in replays(cfg)}
        for i, rec, event in lines:
            sha = content_sha256(event)
            eid = event["event_id"]
            if eid in landed:
                skipped.append(f"{path}:{i}: event_id {eid} is already landed: not sent again")
                if rec.get("dead_letter") and rec["dead_letter"] not in resolved_before:
                    resolved_here.append((i, rec, event, sha, "already_landed"))
            elif (eid, sha) in done or (eid, sha) in seen_in_file:
                skipped.append(f"{path}:{i}: event_id {eid} was replayed before with this content: not sent again")
            else:
                seen_in_file.add((eid, sha))
                todo.append((i, rec, event, sha, "replayed"))
        now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        if todo:   # the records are written after the broker acknowledged every replay
            with EventPublisher(cfg) as pub:   # close() raises PublishError unless every one is acknowledged
                for _, rec, event, _, _ in todo:
                    headers = [("o2p.replayed_by", by.encode("utf-8"))]
                    if rec.get("dead_letter"):
                        headers.append(("o2p.replay_of", str(rec["dead_letter"]).encode("utf-8")))
                    pub.publish(event, headers=headers)
        if todo or resolved_here:
            log_path = deadletter_replays_file(cfg.home_path)
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(log_path, "a", encoding="utf-8") as fh:
                for i, rec, event, sha, outcome in todo + resolved_here:
                    fh.write(json.dumps({
                        "replayed_at": now, "replayed_by": by, "outcome": outcome,
                        "dead_letter": rec.get("dead_letter"), "event_id": event["event_id"], "sha256": sha,
                        "file": str(path), "line": i, "file_sha256": file_sha}, ensure_ascii=False) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
    for line in skipped:
        log(line)
    return {"sent": len(todo), "skipped": len(skipped), "lines": len(lines)}
