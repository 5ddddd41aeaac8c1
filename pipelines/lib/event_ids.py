"""Conflicting event ids (rulebook §1): one `event_id`, two different events.

The same `event_id` with the same content is a producer's retry: every stage keeps one copy.
The same `event_id` with *different* content is not a retry: the copy captured first is kept —
ordered by `CAPTURE_ORDER` (capture time, then topic, partition, offset), across all three
event tables, since an id is unique per logical event whatever its type — and every later
copy that differs from it is a *conflict*: reported as an `event_id_conflict` anomaly, and
read by no stage. A copy captured later can never displace one captured earlier, and a copy
once kept stays kept (the previous judgement is read back), so an amount already released
never changes because of it.

`refresh(cfg)` judges the whole landing zone in one DuckDB pass (content compared as a hash of
every contract field, the parsed event; `ip` as its salted hash) and writes the losing copies
to `warehouse/event_id_conflicts/current/conflicts.parquet` (replaced atomically): usually empty.
Spark (click validity, attribution), dbt (staging) and the gates drop the copies named there
by their Kafka coordinates. It runs before every attribution and commission run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa

from o2p import layout
from o2p.config import Config
from o2p.layout import META, SCHEMAS, TABLES
from o2p.quoting import file_list, literal

# The one ordering of copies of an event: first captured wins (Spark, dbt and the gates use it).
CAPTURE_ORDER = ("_captured_at_us", "_topic", "_partition", "_offset")
_DERIVED = {"event_id", "occurred_at_us", "event_date"}   # computed from the event, not sent
CONTENT = {t: [n for n in SCHEMAS[t].names if n not in _DERIVED and n not in dict(META)] for t in TABLES}

SCHEMA = pa.schema([
    ("event_id", pa.string()),
    ("landed_table", pa.string()), ("event_date", pa.string()), ("occurred_at_us", pa.int64()),
    ("_topic", pa.string()), ("_partition", pa.int32()), ("_offset", pa.int64()), ("_captured_at_us", pa.int64()),
    ("kept_table", pa.string()), ("kept_event_date", pa.string()),
    ("kept_topic", pa.string()), ("kept_partition", pa.int32()), ("kept_offset", pa.int64()),
    ("kept_captured_at_us", pa.int64()),
])


def path(cfg: Config) -> Path:
    return layout.conflicts_file(cfg.warehouse_path)


def _files(cfg: Config, table: str) -> list[Path]:
    return sorted(layout.landing_table(cfg.landing_path, table).glob("event_date=*/*.parquet"))


def find(con, cfg: Config):
    """The losing copies as an Arrow table (SCHEMA)."""
    selects = []
    for table in TABLES:
        files = _files(cfg, table)
        if files:
            cols = ", ".join(CONTENT[table])
            selects.append(
                f"select event_id, {literal(table)} as landed_table, event_date, occurred_at_us, {', '.join(CAPTURE_ORDER)}, "
                f"hash({literal(table)}, {cols}) as content "
                f"from read_parquet({file_list(files)}, union_by_name = true)")
    if not selects:
        return SCHEMA.empty_table()
    order = ", ".join(CAPTURE_ORDER)
    # A decision, once made, sticks: the copy kept by an earlier judgement stays kept while it is
    # landed, whatever a later copy's capture time says (a clock stepped back, a second capture
    # host running late), so an amount released on it never moves.
    old = path(cfg)
    previous = (f"(select distinct event_id, kept_topic, kept_partition, kept_offset from read_parquet({literal(old)}))"
                if old.exists() else
                "(select null::varchar as event_id, null::varchar as kept_topic, null::integer as kept_partition, "
                "null::bigint as kept_offset where false)")
    rel = con.sql(f"""
        with copies as ({' union all '.join(selects)}),
        conflicted as (select event_id from copies group by event_id having count(distinct content) > 1),
        ranked as (
            select c.*,
                   first_value(content) over w as kept_content,
                   first_value(landed_table) over w as kept_table,
                   first_value(event_date) over w as kept_event_date,
                   first_value(_topic) over w as kept_topic,
                   first_value(_partition) over w as kept_partition,
                   first_value(_offset) over w as kept_offset,
                   first_value(_captured_at_us) over w as kept_captured_at_us
            from (
                select c.*, p.event_id is not null as kept_before
                from copies c semi join conflicted using (event_id)
                left join {previous} p on p.event_id = c.event_id and p.kept_topic = c._topic
                    and p.kept_partition = c._partition and p.kept_offset = c._offset
            ) c
            window w as (partition by event_id order by kept_before desc, {order})
        )
        select event_id, landed_table, event_date, occurred_at_us, _topic, _partition::integer as _partition, _offset,
               _captured_at_us, kept_table, kept_event_date, kept_topic, kept_partition::integer as kept_partition,
               kept_offset, kept_captured_at_us
        from ranked where content <> kept_content
        order by event_id, {order}
    """)
    return rel.to_arrow_table().cast(SCHEMA)


def _fingerprint(cfg: Config, out: Path) -> str:
    """What a judgement depends on: every landed file (name, size, mtime) and the previous
    judgement it reads back (the conflicts file as it is now)."""
    import hashlib

    h = hashlib.sha256()
    for f in [*(f for t in TABLES for f in _files(cfg, t)), out]:
        try:
            st = f.stat()
        except FileNotFoundError:
            h.update(f"{f}:missing\n".encode())
            continue
        h.update(f"{f}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def refresh(cfg: Config) -> int:
    """Judge the landing zone and replace the conflicts file; return how many losing copies.

    When no landed file changed since the last judgement (and the conflicts file is the one it
    wrote), judging again reads back the same decisions and gives the same file: it is kept as
    it is (a run after a run costs a directory walk, not a pass over every landed event)."""
    import duckdb
    import pyarrow.parquet as pq

    out = path(cfg)
    stamp = out.with_name(f"{out.name}.fingerprint")
    if out.exists() and stamp.exists() and stamp.read_text() == _fingerprint(cfg, out):
        return pq.read_metadata(out).num_rows
    with duckdb.connect() as con:
        table = find(con, cfg)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, out)
    stamp_tmp = stamp.with_name(f".{stamp.name}.{os.getpid()}.tmp")
    stamp_tmp.write_text(_fingerprint(cfg, out))
    os.replace(stamp_tmp, stamp)
    return table.num_rows


def losers(cfg: Config) -> Path:
    """The conflicts file, made empty if no run has written it yet (readers need the schema)."""
    out = path(cfg)
    if not out.exists():
        import pyarrow.parquet as pq

        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        pq.write_table(SCHEMA.empty_table(), tmp)
        os.replace(tmp, out)
    return out


def not_a_loser_sql(alias: str, cfg: Config) -> str:
    """A DuckDB condition: the row `alias` (with _topic, _partition, _offset) is not a losing copy."""
    return (f"not exists (select 1 from read_parquet({literal(losers(cfg))}) x where x._topic = {alias}._topic "
            f"and x._partition = {alias}._partition and x._offset = {alias}._offset)")
