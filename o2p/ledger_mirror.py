"""The registry's ledger, mirrored in DuckDB, so a period's movement is one SQL join.

Settling period P needs booked(p, l) — what the latest earlier release booked for every line
(rulebook §6) — against the entitlement of every line eligible by end(P). Both grow with the
platform's whole history; loading them into Python dicts costs seconds per million lines and
gigabytes at tens of millions. Instead:

* `settlement.ledger_mirror` in the warehouse holds a copy of the registry's ledger entries.
  The registry stays the truth: before each use, `sync` compares the mirror's per-period
  (entries, Σ entitled, Σ movement) with the registry's `ledger_totals` and reloads, from the
  registry, every period that differs or is missing, and drops periods the registry does not
  have as released. Nothing writes the mirror but `sync`, so a release that crashed after the
  registry committed, a warehouse restored from an older backup or a registry shared by several
  homes all converge on the next settlement: a month's cost is reading the previous release's
  entries (the lines that moved), not the ledger.
* `movements` joins the entitlements to the latest booked amount per line in DuckDB and returns
  only the lines whose amount moved — the same rows as the reference `o2p.settlement.movements`
  (a property test holds them equal).
"""

from __future__ import annotations

import pyarrow as pa

from o2p import layout
from o2p.settlement import LEDGER_FIELDS, StatementRow

MIRROR = layout.LEDGER_MIRROR
_DDL = f"""create table if not exists {MIRROR} (
    period varchar not null, promoter_id varchar not null, order_id varchar not null,
    line_id varchar not null, role varchar not null, entitled_fen bigint not null,
    previously_booked_fen bigint not null, movement_fen bigint not null)"""
_COLUMNS = LEDGER_FIELDS
_TYPES = (pa.string(),) * 4 + (pa.int64(),) * 3
KEY = ("promoter_id", "order_id", "line_id", "role")


def ensure(con) -> None:
    """The mirror's table, empty where it did not exist (dbt's settlement source reads it)."""
    con.execute("create schema if not exists settlement")
    con.execute(_DDL)


def sync(con, registry, before: str, batch_rows: int = 200_000) -> dict[str, list[str]]:
    """Make the mirror hold exactly the registry's ledger of the released periods < `before`.
    Returns the periods reloaded and dropped (empty lists when it was already in step)."""
    ensure(con)
    want = registry.ledger_totals(before)
    have = {p: (int(n), int(e), int(m)) for p, n, e, m in con.execute(
        f"select period, count(*), sum(entitled_fen), sum(movement_fen) from {MIRROR} "
        "where period < ? group by period", [before]).fetchall()}
    drop = sorted(p for p in have if want.get(p) != have[p])
    load = sorted(p for p in want if have.get(p, (0, 0, 0)) != want[p])
    if not drop and not load:
        return {"reloaded": [], "dropped": []}
    con.execute("begin")
    try:
        for p in sorted(set(drop) | set(load)):
            con.execute(f"delete from {MIRROR} where period = ?", [p])
        for p in load:
            rows: list[tuple] = []
            for r in registry.ledger_entries(p):
                rows.append(r)
                if len(rows) >= batch_rows:
                    _append(con, p, rows)
                    rows = []
            _append(con, p, rows)
        got = {p: (int(n), int(e), int(m)) for p, n, e, m in con.execute(
            f"select period, count(*), sum(entitled_fen), sum(movement_fen) from {MIRROR} "
            f"where period in (select unnest(?::varchar[])) group by period", [load]).fetchall()}
        bad = [p for p in load if got.get(p, (0, 0, 0)) != want[p]]
        if bad:   # the registry changed under us (it never should): refuse rather than settle on it
            raise RuntimeError(f"registry ledger of {', '.join(bad)} does not match its ledger_totals "
                               f"({[got.get(p) for p in bad]} vs {[want[p] for p in bad]})")
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return {"reloaded": load, "dropped": [p for p in drop if p not in want]}


def _append(con, period: str, rows: list[tuple]) -> None:
    if not rows:
        return
    cols = list(zip(*rows, strict=True))
    table = pa.table({"period": pa.array([period] * len(rows), pa.string()),
                      **{c: pa.array(v, t) for c, v, t in zip(_COLUMNS, cols, _TYPES, strict=True)}})
    con.register("_ledger_part", table)
    try:
        con.execute(f"insert into {MIRROR} by name select * from _ledger_part")
    finally:
        con.unregister("_ledger_part")


def movements(con, period: str, entitlements: str = layout.ENTITLEMENTS) -> list[StatementRow]:
    """The statement of `period`: lines whose entitlement as of end(P) differs from the latest
    amount booked by an earlier release in the mirror (call `sync` first), ordered by key."""
    on = " and ".join(f"e.{k} = b.{k}" for k in KEY)
    dup = con.execute(
        f"select {', '.join(KEY)} from {entitlements} where period = ? group by all having count(*) > 1 "
        "order by all limit 1", [period]).fetchone()
    if dup:
        raise ValueError(f"entitlement {tuple(dup)} appears twice")
    rows = con.execute(f"""
        with e as (
            select promoter_id, order_id, line_id, role, click_event_id, attribution_reason,
                   rate_e4::bigint as rate_e4, net_fen::bigint as net_fen, entitled_fen::bigint as entitled_fen
            from {entitlements} where period = $period
        ), b as (
            select promoter_id, order_id, line_id, role, arg_max(entitled_fen, period) as booked_fen
            from {MIRROR} where period < $period group by all
        ), j as (
            select {', '.join(f'coalesce(e.{k}, b.{k}) as {k}' for k in KEY)},
                   e.click_event_id, e.attribution_reason,
                   coalesce(e.rate_e4, 0) as rate_e4, coalesce(e.net_fen, 0) as net_fen,
                   coalesce(e.entitled_fen, 0) as entitled_fen, coalesce(b.booked_fen, 0) as previously_booked_fen
            from e full outer join b on {on}
        )
        select *, entitled_fen - previously_booked_fen as movement_fen from j
        where entitled_fen <> previously_booked_fen
        order by {', '.join(KEY)}""", {"period": period}).fetchall()
    return [StatementRow(*r) for r in rows]
