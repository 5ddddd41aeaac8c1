"""Settlement of one period (rulebook §6): movement against what earlier releases booked,
balances with carry, threshold, suspension and payee, then tax (§7). Pure: the inputs are
plain rows, the outputs plain rows; the registry and DuckDB are read and written elsewhere."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

from o2p.tax import PriorPayout, withhold

if TYPE_CHECKING:   # the type only: settlement is pure and reads no reference data
    from o2p.reference import Promoter

Key = tuple[str, str, str, str]   # (promoter_id, order_id, line_id, role)


@dataclass
class StatementRow:
    promoter_id: str
    order_id: str
    line_id: str
    role: str
    click_event_id: str | None
    attribution_reason: str | None
    rate_e4: int
    net_fen: int
    entitled_fen: int
    previously_booked_fen: int
    movement_fen: int


STATEMENT_FIELDS = tuple(f.name for f in fields(StatementRow))   # settlement.statement_lines, with period
# what the registry's ledger keeps of a statement row: the line's key and its three amounts
LEDGER_FIELDS = ("promoter_id", "order_id", "line_id", "role", "entitled_fen", "previously_booked_fen", "movement_fen")


def ledger_entries(statement) -> list[dict]:
    """The ledger entries of a release: one per statement row (rulebook §6: booked(p, l))."""
    return [{k: getattr(r, k) for k in LEDGER_FIELDS} for r in statement]


@dataclass(frozen=True)
class Returned:
    """A transfer of an earlier batch that the promoter never received (FAIL, CANCELLED): its
    gross comes back into the balance of the period that applies it (rulebook §10)."""

    promoter_id: str
    period: str          # the period whose batch sent it
    batch_id: str
    out_bill_no: str
    state: str
    gross_fen: int


@dataclass
class Balance:
    promoter_id: str
    carried_in_fen: int = 0
    movement_fen: int = 0
    returned_fen: int = 0
    balance_fen: int = 0
    gross_fen: int = 0
    tax_fen: int = 0
    net_fen: int = 0
    carried_out_fen: int = 0
    carry_reason: str | None = None


@dataclass
class Settlement:
    period: str
    statement: list[StatementRow] = field(default_factory=list)
    balances: list[Balance] = field(default_factory=list)
    returns: list[Returned] = field(default_factory=list)

    @property
    def paid(self) -> list[Balance]:
        return [b for b in self.balances if b.gross_fen > 0]


def movements(entitlements: list[dict], booked: dict[Key, int]) -> list[StatementRow]:
    """The statement (rulebook §6): every line whose entitlement as of end(P) differs from what
    earlier releases booked, and every booked line that is no longer entitled (re-attributed).
    The reference implementation: the settlement asset computes the same rows in DuckDB
    (`o2p.ledger_mirror.movements`), and a property test holds the two equal."""
    statement: list[StatementRow] = []
    seen: set[Key] = set()
    for e in sorted(entitlements, key=lambda r: (r["promoter_id"], r["order_id"], r["line_id"], r["role"])):
        key: Key = (e["promoter_id"], e["order_id"], e["line_id"], e["role"])
        if key in seen:
            raise ValueError(f"entitlement {key} appears twice")
        seen.add(key)
        prev = booked.get(key, 0)
        move = e["entitled_fen"] - prev
        if move != 0:
            statement.append(StatementRow(
                *key, e.get("click_event_id"), e.get("attribution_reason"), e["rate_e4"],
                e["net_fen"], e["entitled_fen"], prev, move))
    # Lines that earlier releases booked but that no longer appear (e.g. re-attributed).
    for key, prev in sorted(booked.items()):
        if key not in seen and prev != 0:
            statement.append(StatementRow(*key, None, None, 0, 0, 0, prev, -prev))
    return statement


def balances(
    period: str,
    period_end_us: int,
    statement: list[StatementRow],
    carried_in: dict[str, int],
    promoters: dict[str, Promoter],
    prior_payouts: dict[str, list[PriorPayout]],
    *,
    threshold_fen: int,
    tax_rule: str,
    returned: dict[str, int] | None = None,
) -> list[Balance]:
    """Per promoter: carried in + returned transfers + movement (rulebook §10), then paid (gross,
    tax, net) or carried with a reason."""
    month = int(period[5:7])
    returned = returned or {}
    movement: dict[str, int] = {}
    for r in statement:
        movement[r.promoter_id] = movement.get(r.promoter_id, 0) + r.movement_fen
    out: list[Balance] = []
    for pid in sorted(set(movement) | {p for p, v in carried_in.items() if v != 0} | {p for p, v in returned.items() if v}):
        b = Balance(pid, carried_in.get(pid, 0), movement.get(pid, 0), returned.get(pid, 0))
        b.balance_fen = b.carried_in_fen + b.returned_fen + b.movement_fen
        p = promoters.get(pid)
        if b.balance_fen < 0:
            reason = "negative"
        elif p is None:
            reason = "unknown_promoter"
        elif p.suspended_at_us is not None and p.suspended_at_us < period_end_us:
            reason = "suspended"
        elif not p.payee_openid:
            reason = "no_payee"
        elif b.balance_fen < threshold_fen:
            reason = "below_threshold"
        else:
            reason = None
        if reason is None:
            b.gross_fen = b.balance_fen
            b.tax_fen = withhold(tax_rule, b.gross_fen, month, prior_payouts.get(pid, []))
            b.net_fen = b.gross_fen - b.tax_fen
        else:
            b.carried_out_fen = b.balance_fen
            b.carry_reason = reason if b.balance_fen != 0 else None
        if b.balance_fen != 0 or b.movement_fen != 0 or b.returned_fen != 0:
            out.append(b)
    return out


def settle(
    period: str,
    period_end_us: int,
    entitlements: list[dict],
    booked: dict[Key, int],
    carried_in: dict[str, int],
    promoters: dict[str, Promoter],
    prior_payouts: dict[str, list[PriorPayout]],
    *,
    threshold_fen: int,
    tax_rule: str,
    returns: list[Returned] = (),
) -> Settlement:
    statement = movements(entitlements, booked)
    return Settlement(period, statement, balances(
        period, period_end_us, statement, carried_in, promoters, prior_payouts,
        threshold_fen=threshold_fen, tax_rule=tax_rule, returned=returned_by_promoter(returns)), list(returns))


def returned_by_promoter(returns) -> dict[str, int]:
    """returned(p, Q): the gross of p's returned bills applied in Q."""
    out: dict[str, int] = {}
    for r in returns:
        out[r.promoter_id] = out.get(r.promoter_id, 0) + r.gross_fen
    return out
