"""The release registry (SQLAlchemy): released periods, their files, every booked amount and
the balances carried between periods. SQLite under $O2P_HOME by default; any SQLAlchemy URL
(PostgreSQL in production) through `registry_url`.

A period row is inserted *before* a release writes anything (status `releasing`), under a
unique constraint on the period, so two concurrent releases of one period cannot both proceed.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    create_engine,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from o2p.errors import O2PError
from o2p.settlement import LEDGER_FIELDS
from o2p.tax import PriorPayout

log = logging.getLogger("o2p.registry")
metadata = MetaData()

batches = Table(
    "batches", metadata,
    Column("period", String(7), primary_key=True),
    Column("batch_id", String(64), nullable=False, unique=True),
    Column("status", String(16), nullable=False),          # releasing | released
    Column("folder", Text),
    Column("row_count", Integer),
    Column("gross_fen", BigInteger),
    Column("tax_fen", BigInteger),
    Column("net_fen", BigInteger),
    Column("config_hash", String(64)),
    Column("input_fingerprint", String(64)),
    Column("manifest_sha256", String(64)),
    Column("claimed_at", String(40)),
    Column("claimed_by", String(200)),                    # "pid N on HOST" of the releasing process
    Column("released_at", String(40)),
    Column("released_by", String(200)),                   # the person (rulebook §10), NULL before 0002
)
# The approval of a released batch (payout.require_approval, rulebook §10)
approvals = Table(
    "approvals", metadata,
    Column("period", String(7), primary_key=True),
    Column("batch_id", String(64), nullable=False, unique=True),
    Column("approved_by", String(200), nullable=False),
    Column("approved_at", String(40), nullable=False),
    Column("manifest_sha256", String(64), nullable=False),
    Column("approval_sha256", String(64)),
)
# Append-only: every command that changed money, who ran it and when
actions = Table(
    "actions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", String(40), nullable=False),
    Column("who", String(200), nullable=False),
    Column("action", String(32), nullable=False),
    Column("period", String(7)),
    Column("detail", Text),
)
batch_files = Table(
    "batch_files", metadata,
    Column("period", String(7), nullable=False),
    Column("name", String(64), nullable=False),
    Column("sha256", String(64), nullable=False),
    UniqueConstraint("period", "name"),
)
ledger = Table(
    "ledger_entries", metadata,
    Column("period", String(7), nullable=False, index=True),
    Column("promoter_id", String(64), nullable=False),
    Column("order_id", String(64), nullable=False),
    Column("line_id", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("entitled_fen", BigInteger, nullable=False),
    Column("previously_booked_fen", BigInteger, nullable=False),
    Column("movement_fen", BigInteger, nullable=False),
    UniqueConstraint("period", "promoter_id", "order_id", "line_id", "role"),
)
# One row per released period, written with its ledger entries: what DuckDB's ledger mirror
# checks itself against (o2p.ledger_mirror) without scanning the ledger. A registry released
# before this table existed has no row for those periods; they are aggregated from the ledger.
ledger_totals = Table(
    "ledger_totals", metadata,
    Column("period", String(7), primary_key=True),
    Column("entries", BigInteger, nullable=False),
    Column("entitled_fen", BigInteger, nullable=False),
    Column("movement_fen", BigInteger, nullable=False),
)
balances = Table(
    "balances", metadata,
    Column("period", String(7), nullable=False, index=True),
    Column("promoter_id", String(64), nullable=False),
    Column("carried_in_fen", BigInteger, nullable=False),
    Column("movement_fen", BigInteger, nullable=False),
    Column("balance_fen", BigInteger, nullable=False),
    Column("gross_fen", BigInteger, nullable=False),
    Column("tax_fen", BigInteger, nullable=False),
    Column("net_fen", BigInteger, nullable=False),
    Column("carried_out_fen", BigInteger, nullable=False),
    Column("carry_reason", String(32)),
    UniqueConstraint("period", "promoter_id"),
    Column("returned_fen", BigInteger),                   # returned transfers applied here (NULL before 0003)
)
# One bill per payee of a released batch (rulebook §8, §10): what was sent, its latest state
transfer_bills = Table(
    "transfer_bills", metadata,
    Column("out_bill_no", String(64), primary_key=True),
    Column("period", String(7), nullable=False, index=True),
    Column("batch_id", String(64), nullable=False),
    Column("promoter_id", String(64), nullable=False),
    Column("openid", String(128)),
    Column("payee_name", Text),                           # as released (user_name of a large transfer)
    Column("gross_fen", BigInteger, nullable=False),
    Column("tax_fen", BigInteger, nullable=False),
    Column("net_fen", BigInteger, nullable=False),
    Column("state", String(24)),
    Column("state_time", String(40)),
    Column("state_at_us", BigInteger),
    Column("applied_in", String(7)),                      # the release that applied its return
    UniqueConstraint("period", "promoter_id"),
)
# Every imported line of a transfer-results file, with the file's SHA-256 and who imported it
transfer_results = Table(
    "transfer_results", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("out_bill_no", String(64), nullable=False, index=True),
    Column("state", String(24), nullable=False),
    Column("update_time", String(40), nullable=False),
    Column("update_at_us", BigInteger, nullable=False),
    Column("transfer_amount", BigInteger, nullable=False),
    Column("openid", String(128)),
    Column("line_no", Integer, nullable=False),
    Column("raw", Text, nullable=False),
    Column("file_sha256", String(64), nullable=False),
    Column("imported_by", String(200), nullable=False),
    Column("imported_at", String(40), nullable=False),
    UniqueConstraint("out_bill_no", "state", "update_at_us"),
)


RETURNED_STATES = ("FAIL", "CANCELLED")   # the promoter never received it (rulebook §10)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _me() -> str:
    return f"pid {os.getpid()} on {socket.gethostname()}"


def _dead_here(claimed_by: str | None) -> bool:
    """True if the claim was made on this host by a process that no longer exists."""
    try:
        _, pid, _, host = (claimed_by or "").split(" ", 3)
        if host != socket.gethostname():
            return False
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (ValueError, PermissionError):
        return False
    return False


CHUNK = 5000   # bills per IN (…): PostgreSQL takes at most 65535 parameters a statement


def _chunks(items: list[str]):
    for i in range(0, len(items), CHUNK):
        yield items[i:i + CHUNK]


def _bills(c, out_bill_nos=None, period: str | None = None) -> dict[str, dict]:
    q = select(transfer_bills)
    if period is not None:
        q = q.where(transfer_bills.c.period == period)
    if out_bill_nos is None:
        return {r["out_bill_no"]: dict(r) for r in c.execute(q).mappings()}
    out: dict[str, dict] = {}
    for part in _chunks(list(out_bill_nos)):
        out.update({r["out_bill_no"]: dict(r) for r in c.execute(q.where(transfer_bills.c.out_bill_no.in_(part))).mappings()})
    return out


def _results(c, out_bill_nos) -> list[dict]:
    out: list[dict] = []
    for part in _chunks(list(out_bill_nos)):
        out += [dict(r) for r in c.execute(select(transfer_results).where(
            transfer_results.c.out_bill_no.in_(part))).mappings()]
    return sorted(out, key=lambda r: r["id"])


def _ensure_bills(c) -> None:
    """Bills for the paid promoters of released batches that have none: a batch completed by an
    older version while the registry was being upgraded (migration 0003 backfills the others)."""
    from o2p.release import out_bill_no

    rows = c.execute(
        select(batches.c.period, batches.c.batch_id, balances.c.promoter_id, balances.c.gross_fen,
               balances.c.tax_fen, balances.c.net_fen)
        .join(balances, balances.c.period == batches.c.period)
        .outerjoin(transfer_bills, (transfer_bills.c.period == balances.c.period)
                   & (transfer_bills.c.promoter_id == balances.c.promoter_id))
        .where(batches.c.status == "released", balances.c.gross_fen > 0, transfer_bills.c.out_bill_no.is_(None))
    ).fetchall()
    if rows:
        c.execute(insert(transfer_bills), [{"out_bill_no": out_bill_no(r.batch_id, r.promoter_id), "period": r.period,
                                            "batch_id": r.batch_id, "promoter_id": r.promoter_id,
                                            "gross_fen": r.gross_fen, "tax_fen": r.tax_fen, "net_fen": r.net_fen}
                                           for r in rows])


LEDGER_COLUMNS = LEDGER_FIELDS


def _insert_ledger(c, period: str, entries: list[dict], use_copy: bool = True) -> None:
    """A period's ledger entries, in the caller's transaction. On PostgreSQL through COPY (a
    million entries: 3.0 s instead of 14.0 s as batched INSERTs, `bench/registry.py`);
    elsewhere an executemany."""
    if use_copy and c.dialect.name == "postgresql" and c.dialect.driver == "psycopg":
        cols = ", ".join(("period", *LEDGER_COLUMNS))
        with c.connection.driver_connection.cursor() as cur, cur.copy(f"COPY ledger_entries ({cols}) FROM STDIN") as cp:
            for e in entries:
                cp.write_row((period, *(e[k] for k in LEDGER_COLUMNS)))
        return
    c.execute(insert(ledger), [{"period": period, **e} for e in entries])


class Registry:
    def __init__(self, url: str):
        self.url = url
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)   # a new home: its folder
        # SQLite: a writer waits up to a minute for another (a reconcile, a release) to commit
        self.engine = create_engine(url, future=True, **({"connect_args": {"timeout": 60}}
                                                          if parsed.get_backend_name() == "sqlite" else {}))
        # The schema is Alembic's (o2p/migrations): a new registry is created, an older one
        # upgraded in place. Two processes opening a new registry at once both try to create the
        # tables; the loser's CREATE fails ("already exists", or a unique violation in
        # PostgreSQL's catalogue) and its second look finds them.
        from o2p.migrations import upgrade

        for attempt in (1, 2, 3):
            try:
                upgrade(self.engine)
                break
            except (OperationalError, ProgrammingError, IntegrityError):
                if attempt == 3:
                    raise
                time.sleep(0.2 * attempt)

    # ---- reads -------------------------------------------------------------
    def batch(self, period: str) -> dict | None:
        with self.engine.connect() as c:
            row = c.execute(select(batches).where(batches.c.period == period)).mappings().first()
            return dict(row) if row else None

    def released_folder(self, period: str) -> Path | None:
        """The folder of the period's released batch, None while it is not released."""
        b = self.batch(period)
        return Path(b["folder"]) if b and b["status"] == "released" else None

    def released(self) -> list[dict]:
        with self.engine.connect() as c:
            rows = c.execute(select(batches).order_by(batches.c.period)).mappings().all()
            return [dict(r) for r in rows]

    def files(self, period: str) -> dict[str, str]:
        with self.engine.connect() as c:
            rows = c.execute(select(batch_files.c.name, batch_files.c.sha256).where(batch_files.c.period == period))
            return {r.name: r.sha256 for r in rows}

    def balance(self, period: str, promoter_id: str) -> dict | None:
        with self.engine.connect() as c:
            row = c.execute(select(balances).where(balances.c.period == period,
                                                   balances.c.promoter_id == promoter_id)).mappings().first()
            return dict(row) if row else None

    def released_balances(self):
        """Every balance of every released period (BI, issue #14), as dicts in (period, promoter)
        order; returned_fen 0 where it predates migration 0003."""
        q = (select(balances).join(batches, batches.c.period == balances.c.period)
             .where(batches.c.status == "released").order_by(balances.c.period, balances.c.promoter_id))
        with self.engine.connect() as c:
            return [{**r, "returned_fen": r["returned_fen"] or 0} for r in c.execute(q).mappings()]

    def balances(self, period: str) -> list[dict]:
        """Every promoter's balance row of a released period (what payout.csv and carried.csv show)."""
        with self.engine.connect() as c:
            rows = c.execute(select(balances).where(balances.c.period == period)
                             .order_by(balances.c.promoter_id)).mappings().all()
            return [dict(r) for r in rows]

    def booked_before(self, period: str) -> dict[tuple, int]:
        """booked(p, l): the entitled value of the latest earlier released period that counted it."""
        q = (
            select(ledger.c.promoter_id, ledger.c.order_id, ledger.c.line_id, ledger.c.role, ledger.c.entitled_fen)
            .join(batches, batches.c.period == ledger.c.period)
            .where(ledger.c.period < period, batches.c.status == "released")
            .order_by(ledger.c.period)
        )
        out: dict[tuple, int] = {}
        with self.engine.connect() as c:
            for r in c.execute(q):
                out[(r.promoter_id, r.order_id, r.line_id, r.role)] = r.entitled_fen
        return out

    def ledger_totals(self, before: str) -> dict[str, tuple[int, int, int]]:
        """Released period < `before` → (entries, Σ entitled_fen, Σ movement_fen) of its ledger."""
        with self.engine.connect() as c:
            released = [r.period for r in c.execute(
                select(batches.c.period).where(batches.c.period < before, batches.c.status == "released"))]
            out = {r.period: (int(r.entries), int(r.entitled_fen), int(r.movement_fen)) for r in c.execute(
                select(ledger_totals).where(ledger_totals.c.period.in_(released)))} if released else {}
            missing = [p for p in released if p not in out]
            if missing:   # released before ledger_totals existed
                q = (select(ledger.c.period, func.count(), func.coalesce(func.sum(ledger.c.entitled_fen), 0),
                            func.coalesce(func.sum(ledger.c.movement_fen), 0))
                     .where(ledger.c.period.in_(missing)).group_by(ledger.c.period))
                found = {r[0]: (int(r[1]), int(r[2]), int(r[3])) for r in c.execute(q)}
                out.update({p: found.get(p, (0, 0, 0)) for p in missing})
            return out

    def ledger_entries(self, period: str):
        """Every ledger entry of one period, as (promoter_id, order_id, line_id, role,
        entitled_fen, previously_booked_fen, movement_fen) tuples, streamed."""
        q = select(ledger.c.promoter_id, ledger.c.order_id, ledger.c.line_id, ledger.c.role,
                   ledger.c.entitled_fen, ledger.c.previously_booked_fen, ledger.c.movement_fen
                   ).where(ledger.c.period == period)
        with self.engine.connect() as c:
            result = c.execution_options(stream_results=True, yield_per=50_000).execute(q)
            for part in result.partitions():
                yield from (tuple(r) for r in part)

    def carried_into(self, previous_period: str) -> dict[str, int]:
        with self.engine.connect() as c:
            rows = c.execute(
                select(balances.c.promoter_id, balances.c.carried_out_fen)
                .where(balances.c.period == previous_period, balances.c.carried_out_fen != 0))
            return {r.promoter_id: r.carried_out_fen for r in rows}

    def prior_payouts(self, period: str) -> dict[str, list[PriorPayout]]:
        """Payouts earlier in the same tax (calendar) year, per promoter; a returned bill was never
        income, so its payout is left out (rulebook §10: its gross, its tax and its month)."""
        year = period[:4]
        returned = (select(transfer_bills.c.period, transfer_bills.c.promoter_id)
                    .where(transfer_bills.c.state.in_(RETURNED_STATES)))
        out: dict[str, list[PriorPayout]] = {}
        with self.engine.connect() as c:
            gone = {(r.period, r.promoter_id) for r in c.execute(returned)}
            rows = c.execute(
                select(balances.c.period, balances.c.promoter_id, balances.c.gross_fen, balances.c.tax_fen)
                .where(balances.c.period >= f"{year}-01", balances.c.period < period, balances.c.gross_fen > 0))
            for r in rows:
                if (r.period, r.promoter_id) not in gone:
                    out.setdefault(r.promoter_id, []).append(PriorPayout(int(r.period[5:7]), r.gross_fen, r.tax_fen))
        return out

    def returns_to_apply(self) -> list[dict]:
        """Returned bills (FAIL, CANCELLED) that no release has applied yet: the next one does."""
        with self.engine.connect() as c:
            return [dict(r) for r in c.execute(
                select(transfer_bills).where(transfer_bills.c.state.in_(RETURNED_STATES),
                                             transfer_bills.c.applied_in.is_(None))
                .order_by(transfer_bills.c.period, transfer_bills.c.promoter_id)).mappings()]

    def bills(self, out_bill_nos: Iterable[str] | None = None, period: str | None = None) -> dict[str, dict]:
        with self.engine.connect() as c:
            return _bills(c, out_bill_nos, period)

    def results(self, out_bill_nos: Iterable[str]) -> list[dict]:
        with self.engine.connect() as c:
            return _results(c, out_bill_nos)

    def reconcile_locked(self, out_bill_nos: Iterable[str], decide, *, file_sha256: str, who: str,
                         file_name: str) -> tuple[list[dict], dict]:
        """Read the bills and their history, `decide(bills, history)` → (new lines, new states),
        and write them, in one transaction that holds the reconcile lock: concurrent imports
        are serialised, each planned against what the other recorded. `decide` raising rolls
        everything back."""
        nos = list(out_bill_nos)
        now = _now()
        with self.engine.begin() as c:
            # the lock first: the log line (SQLite's write lock), or an advisory lock (PostgreSQL)
            if c.dialect.name == "postgresql":
                c.execute(text("select pg_advisory_xact_lock(hashtext('o2p.reconcile'))"))
            action = c.execute(insert(actions).values(at=now, who=who, action="reconcile", period=None,
                                                      detail=f"{file_name}: started")).inserted_primary_key[0]
            _ensure_bills(c)
            lines, states = decide(_bills(c, nos), _results(c, nos))
            if lines:
                c.execute(insert(transfer_results), [{**ln, "file_sha256": file_sha256, "imported_by": who,
                                                      "imported_at": now} for ln in lines])
            if states:   # one executemany, not a statement per bill
                c.execute(update(transfer_bills).where(transfer_bills.c.out_bill_no == bindparam("b_no")).values(
                    state=bindparam("b_state"), state_time=bindparam("b_time"), state_at_us=bindparam("b_at")),
                    [{"b_no": no, "b_state": st, "b_time": when, "b_at": at} for no, (st, when, at) in states.items()])
            c.execute(update(actions).where(actions.c.id == action).values(
                detail=f"{file_name} (sha256 {file_sha256}): {len(lines)} new lines, {len(states)} bills changed state"))
        return lines, states

    def approval(self, period: str) -> dict | None:
        with self.engine.connect() as c:
            row = c.execute(select(approvals).where(approvals.c.period == period)).mappings().first()
            return dict(row) if row else None

    def approvals(self) -> dict[str, dict]:
        with self.engine.connect() as c:
            return {r["period"]: dict(r) for r in c.execute(select(approvals)).mappings()}

    def history(self, period: str | None = None) -> list[dict]:
        q = select(actions).order_by(actions.c.id)
        if period is not None:
            q = q.where(actions.c.period == period)
        with self.engine.connect() as c:
            return [dict(r) for r in c.execute(q).mappings()]

    # ---- writes ------------------------------------------------------------
    def record(self, who: str, action: str, period: str | None, detail: str = "", c=None) -> None:
        """One line of the append-only log of commands that changed money."""
        row = {"at": _now(), "who": who, "action": action, "period": period, "detail": detail}
        if c is not None:
            c.execute(insert(actions).values(**row))
            return
        with self.engine.begin() as conn:
            conn.execute(insert(actions).values(**row))

    def approve(self, period: str, batch_id: str, *, approved_by: str, manifest_sha256: str,
                approval_sha256: str) -> None:
        """Record the approval (unique per period: a second approver loses, nothing written twice)."""
        with self.engine.begin() as c:
            c.execute(insert(approvals).values(period=period, batch_id=batch_id, approved_by=approved_by,
                                               approved_at=_now(), manifest_sha256=manifest_sha256,
                                               approval_sha256=approval_sha256))
            self.record(approved_by, "approve", period, f"batch {batch_id}", c=c)

    def set_approval_sha256(self, period: str, sha: str) -> None:
        with self.engine.begin() as c:
            c.execute(update(approvals).where(approvals.c.period == period).values(approval_sha256=sha))

    def claim(self, period: str, batch_id: str, released_by: str | None = None) -> None:
        """Insert the period as `releasing`; refuse if any release (running, or done) holds it.

        A claim left by a release that died on this host (its pid is gone) is stale: it is removed
        and the claim retried once. A claim from another host is never guessed at; an operator
        clears it with `o2p payouts abandon --period P` after checking that release is dead.
        """
        for attempt in (1, 2):
            try:
                with self.engine.begin() as c:
                    c.execute(insert(batches).values(period=period, batch_id=batch_id, status="releasing",
                                                     claimed_at=_now(), claimed_by=_me(), released_by=released_by))
                return
            except IntegrityError:
                existing = self.batch(period)
                if attempt == 1 and existing and existing["status"] == "releasing" and _dead_here(existing["claimed_by"]):
                    log.warning("period %s: removing the stale claim of a release that died (%s, %s)",
                                period, existing["claimed_by"], existing["claimed_at"])
                    self.abandon(period, claimed_by=existing["claimed_by"])
                    continue
                if existing and existing["status"] == "releasing":
                    raise O2PError(
                        f"period {period} is being released by another process ({existing['claimed_by']}, "
                        f"since {existing['claimed_at']}, batch {existing['batch_id']}); nothing was written. "
                        "Wait for it; if it is dead on another host, `o2p payouts abandon --period "
                        f"{period}` clears its claim") from None
                raise O2PError(
                    f"period {period} is already {existing['status'] if existing else 'claimed'} "
                    f"(batch {existing and existing['batch_id']})") from None

    def abandon(self, period: str, claimed_by: str | None = None, by: str | None = None) -> int:
        """Remove a `releasing` claim (never a released period); returns the rows removed."""
        q = delete(batches).where(batches.c.period == period, batches.c.status == "releasing")
        if claimed_by is not None:
            q = q.where(batches.c.claimed_by == claimed_by)
        with self.engine.begin() as c:
            n = c.execute(q).rowcount
            if n:
                self.record(by or _me(), "abandon", period, f"claim of {claimed_by or 'a release'} removed", c=c)
            return n

    def complete(self, period: str, *, folder: str, totals: dict, files: dict[str, str],
                 manifest_sha256: str, config_hash: str, input_fingerprint: str,
                 entries: Iterable[dict], balance_rows: Iterable[dict],
                 bills: Iterable[dict] = (), applied_returns: Iterable[str] = ()) -> None:
        with self.engine.begin() as c:
            bills = list(bills)
            if bills:
                c.execute(insert(transfer_bills), [{"period": period, **b} for b in bills])
            applied = set(applied_returns)
            # every return recorded before this release is applied in it (rulebook §10): one read
            # back between settlement and now means the balances are stale
            waiting = {r.out_bill_no for r in c.execute(select(transfer_bills.c.out_bill_no).where(
                transfer_bills.c.state.in_(RETURNED_STATES), transfer_bills.c.applied_in.is_(None)))}
            if waiting != applied:
                raise O2PError(f"period {period}: transfer results recorded during this release changed the returned "
                               f"transfers to apply ({len(waiting - applied)} new, {len(applied - waiting)} gone); "
                               "nothing was released: release the period again")
            if applied:
                c.execute(update(transfer_bills).where(transfer_bills.c.out_bill_no.in_(sorted(applied)))
                          .values(applied_in=period))
            if files:
                c.execute(insert(batch_files), [{"period": period, "name": n, "sha256": h} for n, h in sorted(files.items())])
            entries = list(entries)
            if entries:
                _insert_ledger(c, period, entries)
            c.execute(insert(ledger_totals).values(
                period=period, entries=len(entries), entitled_fen=sum(e["entitled_fen"] for e in entries),
                movement_fen=sum(e["movement_fen"] for e in entries)))
            balance_rows = list(balance_rows)
            if balance_rows:
                c.execute(insert(balances), [{"period": period, **b} for b in balance_rows])
            c.execute(update(batches).where(batches.c.period == period).values(
                status="released", folder=folder, row_count=totals["row_count"],
                gross_fen=totals["gross_fen"], tax_fen=totals["tax_fen"], net_fen=totals["net_fen"],
                config_hash=config_hash, input_fingerprint=input_fingerprint,
                manifest_sha256=manifest_sha256, released_at=_now()))
            released_by = c.execute(select(batches.c.released_by).where(batches.c.period == period)).scalar()
            self.record(released_by or _me(), "release", period,
                        f"{totals['row_count']} payees, net {totals['net_fen']} fen, {folder}", c=c)
