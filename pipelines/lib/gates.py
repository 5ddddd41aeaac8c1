"""The gates of the upstream stages — landing, click validity, attribution — per event day.

They run where the data is produced (blocking checks of the Spark assets, so a failure stops
attribution and commission in that run) and again, only where needed, before money moves: the
release re-validates every day whose files changed since its last passing validation (a late
file, a re-run, a hand edit), so a payout never rests on data that no gate saw.

Each (day, suite) result is kept in $O2P_HOME/quality/days/<day>/<suite>.json with a fingerprint
of the files it judged (name, size, mtime). The frames are built by DuckDB from the Parquet files
and validated by Great Expectations (`expectations/suites.py`); only the columns the suites need
are read.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from expectations import suites
from expectations.runner import SuiteResult, merge, run_suite
from o2p import layout
from o2p.config import Config
from o2p.gates import UPSTREAM, Gate
from o2p.quoting import file_list
from o2p.timeutil import US_PER_DAY, US_PER_SECOND, period_end_us, shanghai_date_sql
from pipelines.lib import event_ids
from pipelines.lib.partitions import window_dates

log = logging.getLogger("o2p.gates")

CAPTURE_DATE_SQL = shanghai_date_sql("_captured_at_us")
_LANDED = tuple(f"{layout.LANDING}/{t}" for t in layout.TABLES)
_LANDED_CLICKS, _LANDED_ORDERS = f"{layout.LANDING}/clicks", f"{layout.LANDING}/orders"
_VALIDATED = f"{layout.WAREHOUSE}/{layout.CLICKS_VALIDATED}"
_ATTRIBUTED = f"{layout.WAREHOUSE}/{layout.ORDER_ATTRIBUTION}"
INPUTS = {   # the folders whose day partition each suite judges
    Gate.LANDING: _LANDED,
    Gate.CLICK_VALIDITY: (_LANDED_CLICKS, _VALIDATED),
    Gate.ATTRIBUTION: (_LANDED_ORDERS, _ATTRIBUTED, _VALIDATED),
}


def _root(cfg: Config, sub: str) -> Path:
    base, _, name = sub.partition("/")
    return (cfg.landing_path if base == layout.LANDING else cfg.warehouse_path) / name


def _files(cfg: Config, sub: str, days: list[str]) -> list[str]:
    root = _root(cfg, sub)
    return [str(f) for d in days for f in sorted(layout.event_date_dir(root, d).glob("*.parquet"))]


def fingerprint(cfg: Config, suite: str, day: str) -> str:
    h = hashlib.sha256()
    for sub in INPUTS[suite]:
        for f in _files(cfg, sub, [day]):
            st = Path(f).stat()
            h.update(f"{sub}/{Path(f).name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _record_path(cfg: Config, day: str, suite: str) -> Path:
    return layout.day_result_file(cfg.home_path, day, suite)


JUDGED = {   # the records each suite judges, counted per day for the release manifest
    Gate.LANDING: _LANDED,
    Gate.CLICK_VALIDITY: (_VALIDATED,),
    Gate.ATTRIBUTION: (_ATTRIBUTED,),
}


def day_rows(cfg: Config, suite: str, day: str) -> int:
    """How many records `suite` judges on `day` (Parquet footers: no data is read)."""
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for sub in JUDGED[suite] for f in _files(cfg, sub, [day]))


def _record(cfg: Config, days: list[str], result: SuiteResult) -> None:
    """One validation covers a batch of days; each day keeps the batch's result (and its id, so
    the batch's rows are counted once when the days are summed up)."""
    batch = f"{days[0]}..{days[-1]}" if days else ""
    for day in days:
        p = _record_path(cfg, day, result.suite)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps({"fingerprint": fingerprint(cfg, result.suite, day), "batch": batch,
                                 **result.as_dict()}, ensure_ascii=False, indent=1))


# ---- the frames ---------------------------------------------------------------------------
def landing(con, cfg: Config, days: list[str]) -> SuiteResult:
    q = cfg.quality
    parts = []
    cols = {"clicks": "channel", "orders": "null", "refunds": "null"}
    selects = []
    for table, channel in cols.items():
        files = _files(cfg, f"{layout.LANDING}/{table}", days)
        if files:
            selects.append(
                f"select '{table}' as landed_table, event_id, event_type, source, {channel} as channel, "
                f"occurred_at_us, _topic, _partition, _offset, _captured_at_us "
                f"from read_parquet({file_list(files)}, union_by_name = true)")
    if not selects:
        return SuiteResult(Gate.LANDING, True, rows=0)
    capture_date = CAPTURE_DATE_SQL
    events = con.execute(
        f"select *, _captured_at_us - {q.max_event_age_days * US_PER_DAY} as earliest_sane_us, "
        f"_captured_at_us + {q.max_future_seconds * US_PER_SECOND} as latest_sane_us, {capture_date} as capture_date "
        f"from ({' union all '.join(selects)})").df()
    # enums as categoricals: GX copies the frame per metric, and object columns cost most to copy
    for c in ("landed_table", "event_type", "source", "channel", "_topic", "capture_date"):
        events[c] = events[c].astype("category")
    parts.append(run_suite("landing_events", events, suites.landing_events, home=cfg.home_path,
                           id_columns=["event_id"]))
    order_files = _files(cfg, _LANDED_ORDERS, days)
    if order_files:
        lines = con.execute(
            f"select event_id, order_id, l.line_id, l.quantity, l.unit_price_fen, l.discount_fen, l.paid_fen, "
            f"l.quantity * l.unit_price_fen - l.discount_fen as expected_paid_fen "
            f"from (select event_id, order_id, unnest(lines) as l from ("
            # a producer retry lands the same event again (staging keeps one): judge each event once
            f"select * from read_parquet({file_list(order_files)}, union_by_name = true) e "
            f"where event_type = 'order_paid' and {event_ids.not_a_loser_sql('e', cfg)} "
            f"qualify row_number() over (partition by event_id order by {', '.join(event_ids.CAPTURE_ORDER)}) = 1))").df()
        parts.append(run_suite("landing_lines", lines, suites.landing_lines, home=cfg.home_path,
                               id_columns=["event_id", "line_id"]))
    # the dead letters of each capture date these days' events were captured on, against every
    # message captured that date (all landed files, not only this window's: a narrow run — one
    # day, one range of a split run — would otherwise divide them by a fraction of the day)
    dates = sorted(str(d) for d in events["capture_date"].unique())
    per_day = captured_per_day(cfg)
    landed = {d: per_day.get(d, 0) for d in dates}
    parts.append(_deadletter_suite(cfg, landed, _dead_per_day(con, cfg, dates)))
    return merge(Gate.LANDING, parts)


def click_validity(con, cfg: Config, days: list[str]) -> SuiteResult:
    landed, out = _files(cfg, _LANDED_CLICKS, days), _files(cfg, _VALIDATED, days)
    if not landed and not out:
        return SuiteResult(Gate.CLICK_VALIDITY, True, rows=0)
    # a copy that conflicts with an earlier one of its event_id is read by no stage (rulebook §1)
    n_landed = con.execute(f"select count(distinct event_id) from read_parquet({file_list(landed)}, union_by_name = true) e "
                           f"where {event_ids.not_a_loser_sql('e', cfg)}").fetchone()[0] if landed else 0
    if not out:
        return SuiteResult(Gate.CLICK_VALIDITY, False, failures=[{
            "expectation": "expect_table_row_count_to_equal", "observed": 0,
            "sample": f"no click validity output for {days[0]}..{days[-1]}"}], rows=0)
    landed_ids = (f"(select distinct event_id from read_parquet({file_list(landed)}, union_by_name = true) e "
                  f"where {event_ids.not_a_loser_sql('e', cfg)})"
                  if landed else "(select null::varchar as event_id where false)")
    df = con.execute(f"""
        select o.event_id, o.is_valid, o.invalid_reasons, o.flood_count,
               o.is_valid = (o.invalid_reasons = '') as valid_matches_reasons,
               l.event_id is not null as in_landing
        from read_parquet({file_list(out)}, union_by_name = true) o left join {landed_ids} l using (event_id)
    """).df()
    return run_suite(Gate.CLICK_VALIDITY, df, lambda E: suites.click_validity(E, n_landed), home=cfg.home_path,
                     id_columns=["event_id"])


def attribution(con, cfg: Config, days: list[str]) -> SuiteResult:
    out = _files(cfg, _ATTRIBUTED, days)
    orders = _files(cfg, _LANDED_ORDERS, days)
    # every landed order_paid event of these days has its row (an order landed after the last
    # attribution run would otherwise be settled as organic)
    n_orders = con.execute(
        f"select count(distinct event_id) from read_parquet({file_list(orders)}, union_by_name = true) e "
        f"where event_type = 'order_paid' and {event_ids.not_a_loser_sql('e', cfg)}").fetchone()[0] if orders else 0
    if not out:
        if n_orders == 0:
            return SuiteResult(Gate.ATTRIBUTION, True, rows=0)
        return SuiteResult(Gate.ATTRIBUTION, False, failures=[{
            "expectation": "expect_table_row_count_to_equal", "column": None, "observed": 0,
            "unexpected_count": n_orders,
            "sample": f"{n_orders} landed orders of {days[0]}..{days[-1]} have no attribution: run `o2p run`"}])
    lock = cfg.attribution.model == "wechat_lock"
    lookback = cfg.attribution.lookback_days * US_PER_DAY
    if lock:
        # A locked order's click may be as old as the lock's chain of extensions, so no window
        # bounds it: read the days the output says its clicks are on. An output that names the
        # wrong day (or time) does not find its click there, and fails `click_exists`.
        click_days = sorted({d for (d,) in con.execute(
            f"select distinct {shanghai_date_sql('click_occurred_at_us')} "
            f"from read_parquet({file_list(out)}, union_by_name = true) where click_occurred_at_us is not null"
        ).fetchall()} | set(days))
    else:
        click_days = window_dates(days[0], days[-1], cfg.attribution.lookback_days, 1)   # +1: to name a click after its order
    clicks = _files(cfg, _VALIDATED, click_days)
    click_rel = (f"read_parquet({file_list(clicks)}, union_by_name = true)" if clicks else
                 "(select null::varchar as event_id, null::varchar as buyer_id, null::bigint as occurred_at_us, "
                 "null::boolean as is_valid where false)")
    in_window = "null" if lock else f"c.occurred_at_us > a.paid_at_us - {lookback}"
    df = con.execute(f"""
        with a as (select * from read_parquet({file_list(out)}, union_by_name = true)),
        c as (select event_id, buyer_id, occurred_at_us, is_valid from {click_rel}
              where event_id in (select click_event_id from a))
        select a.order_event_id, a.order_id, a.attribution_reason,
               (a.promoter_id is null) = (a.attribution_reason = 'organic') as reason_matches_promoter,
               case when a.click_event_id is not null then c.event_id is not null end as click_exists,
               case when a.click_event_id is not null then c.buyer_id = a.buyer_id end as click_of_buyer,
               case when a.click_event_id is not null then c.occurred_at_us <= a.paid_at_us end as click_not_after_order,
               case when a.click_event_id is not null then {in_window} end as click_in_window,
               case when a.click_event_id is not null then c.is_valid end as click_is_valid
        from a left join c on c.event_id = a.click_event_id
    """).df()
    return run_suite(Gate.ATTRIBUTION, df, lambda E: suites.attribution(E, n_orders), home=cfg.home_path,
                     id_columns=["order_event_id"])


STAGES = {Gate.LANDING: landing, Gate.CLICK_VALIDITY: click_validity, Gate.ATTRIBUTION: attribution}
assert tuple(STAGES) == UPSTREAM


def validate(cfg: Config, days: list[str], stages: tuple[str, ...]) -> dict[str, SuiteResult]:
    """Run the suites of `stages` over `days` (one validation per suite) and record per day."""
    import duckdb

    out = {}
    with duckdb.connect() as con:
        for name in stages:
            try:
                result = STAGES[name](con, cfg, days)
            except Exception as exc:  # noqa: BLE001 - a gate that cannot run has failed
                result = SuiteResult(name, False, error=f"{type(exc).__name__}: {exc}")
            _record(cfg, days, result)
            out[name] = result
    return out


def landed_days(cfg: Config, before_us: int | None = None) -> list[str]:
    from o2p.layout import landed_days as landed

    days = landed(cfg.landing_path)
    if before_us is not None:
        days = [d for d in days if _day_start_us(d) < before_us]
    return days


def _day_start_us(day: str) -> int:
    from o2p.timeutil import day_end_us

    return day_end_us(day) - US_PER_DAY


def captured_per_day(cfg: Config) -> dict[str, int]:
    """Events landed per capture date over the whole landing zone. A landed file never changes
    once renamed into place (its name carries topic, partition and offsets), so each file's
    counts are read once and kept in $O2P_HOME/quality/capture_counts.json, keyed by name,
    size and mtime; a release reads only the files landed since the last one."""
    import duckdb

    from o2p.fsio import write_json_atomic
    from o2p.layout import TABLES

    path = layout.capture_counts_file(cfg.home_path)
    cache = json.loads(path.read_text()) if path.exists() else {}
    current: dict[str, str] = {}
    for table in TABLES:
        for f in sorted(layout.landing_table(cfg.landing_path, table).glob("event_date=*/*.parquet")):
            st = f.stat()
            current[f"{table}/{f.parent.name}/{f.name}:{st.st_size}:{st.st_mtime_ns}"] = str(f)
    new = [k for k in current if k not in cache]
    counts = {k: cache[k] for k in current if k in cache}
    if new:
        by_file = {current[k]: k for k in new}
        with duckdb.connect() as con:
            rows = con.execute(
                f"select filename, {CAPTURE_DATE_SQL} as d, count(*) from read_parquet("
                f"{file_list(list(by_file))}, filename = true, union_by_name = true) group by all").fetchall()
        for k in new:
            counts[k] = {}
        for fname, day, n in rows:
            counts[by_file[fname]][day] = int(n)
    if new or len(counts) != len(cache):
        try:
            write_json_atomic(path, counts)
        except OSError as exc:   # only a cache: the counts above are exact either way
            log.warning("could not write %s: %s", path, exc)
    out: dict[str, int] = {}
    for per_day in counts.values():
        for day, n in per_day.items():
            out[day] = out.get(day, 0) + n
    return out


def _dead_per_day(con, cfg: Config, capture_dates: list[str] | None = None) -> dict[str, int]:
    """Unresolved dead letters per capture date (all of them, or those of `capture_dates`): a dead
    letter whose fixed replay has landed (`o2p deadletters replay`, streaming.deadletters.resolved)
    no longer counts against the ceiling."""
    from streaming.deadletters import resolved

    root = layout.landing_table(cfg.landing_path, layout.DEADLETTERS)
    files = ([str(f) for d in capture_dates for f in sorted(layout.capture_date_dir(cfg.landing_path, d).glob("*.parquet"))]
             if capture_dates is not None else sorted(str(f) for f in root.glob("capture_date=*/*.parquet")))
    if not files:
        return {}
    done = resolved(cfg)
    if not done:
        return {d: int(n) for d, n in con.execute(
            f"select capture_date::varchar, count(*) from read_parquet({file_list(files)}, union_by_name = true) "
            "group by 1").fetchall()}
    import pyarrow as pa

    fixed = pa.table({"t": [t for t, _, _ in done], "p": [p for _, p, _ in done], "o": [o for _, _, o in done]})
    con.register("o2p_resolved_dead_letters", fixed)
    try:
        return {d: int(n) for d, n in con.execute(
            f"select capture_date::varchar, count(*) from read_parquet({file_list(files)}, union_by_name = true) d "
            "where not exists (select 1 from o2p_resolved_dead_letters r "
            "where r.t = d._topic and r.p = d._partition and r.o = d._offset) group by 1").fetchall()}
    finally:
        con.unregister("o2p_resolved_dead_letters")


def _deadletter_suite(cfg: Config, landed: dict[str, int], dead: dict[str, int]) -> SuiteResult:
    """quality.max_deadletter_share per capture date: dead / (landed + dead)."""
    import pandas as pd

    days = sorted(set(landed) | set(dead))
    frame = pd.DataFrame({"capture_date": days, "landed": [landed.get(d, 0) for d in days],
                          "dead": [dead.get(d, 0) for d in days]})
    frame["messages"] = frame["landed"] + frame["dead"]
    frame["dead_share"] = (frame["dead"] / frame["messages"]).astype("float64")
    return run_suite("landing_deadletters", frame,
                     lambda E: suites.landing_deadletters(E, float(cfg.quality.max_deadletter_share)),
                     home=cfg.home_path, id_columns=["capture_date"])


def deadletter_share(cfg: Config) -> SuiteResult:
    """The dead-letter ceiling over every capture date, judged fresh at each release.

    A dead letter has no trustworthy event date, so it cannot be tied to the days a period pays
    from: malformed messages captured on any day may be events of that period that never landed.
    The per-day landing gates judge it too (quickly, as the data arrives), but a burst of dead
    letters after those gates passed changes no landed file; so the release judges the share
    of every capture date again, now (quality.max_deadletter_share)."""
    import duckdb

    with duckdb.connect() as con:
        dead = _dead_per_day(con, cfg)
    return _deadletter_suite(cfg, captured_per_day(cfg), dead)


def for_release(cfg: Config, period: str) -> dict[str, SuiteResult]:
    """Every upstream suite over every landed day before end(P): recorded passing results whose
    inputs are unchanged are reused; the other days are validated again, now."""
    days = landed_days(cfg, period_end_us(period))
    results: dict[str, SuiteResult] = {}
    for suite in UPSTREAM:
        stale, reused = [], []
        for day in days:
            p = _record_path(cfg, day, suite)
            rec = json.loads(p.read_text()) if p.exists() else None
            if rec and rec["success"] and rec["fingerprint"] == fingerprint(cfg, suite, day):
                reused.append(rec)
            else:
                stale.append(day)
        fresh = validate(cfg, stale, (suite,))[suite] if stale else SuiteResult(suite, True)
        evaluated = fresh.evaluated if stale else (reused[0]["expectations"] if reused else 0)
        failures = [dict(f, days=f"{stale[0]}..{stale[-1]}") for f in fresh.failures] if stale else []
        # rows: the records these days hold, however the days were batched when they were judged
        # (one range run or each day alone gives the same manifest)
        results[suite] = SuiteResult(suite, fresh.success, evaluated, failures, fresh.error,
                                     rows=sum(day_rows(cfg, suite, d) for d in days))
    if days:
        results[Gate.LANDING] = merge(Gate.LANDING, [results[Gate.LANDING], deadletter_share(cfg)])
    return results
