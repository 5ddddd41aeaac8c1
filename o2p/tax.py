"""Tax withholding on the gross paid (rulebook §7). Pure functions on integer fen."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from o2p.money import round_fen

# The cumulative table (taxable up to, CNY → rate, quick deduction CNY).
CUMULATIVE_TABLE = [
    (36000, Decimal("0.03"), 0),
    (144000, Decimal("0.10"), 2520),
    (300000, Decimal("0.20"), 16920),
    (420000, Decimal("0.25"), 31920),
    (660000, Decimal("0.30"), 52920),
    (960000, Decimal("0.35"), 85920),
    (None, Decimal("0.45"), 181920),
]
MONTHLY_DEDUCTION_FEN = 500000   # 5000 CNY per paid month


@dataclass(frozen=True)
class PriorPayout:
    """A payout to the same promoter earlier in the same tax year."""

    month: int          # 1..12
    gross_fen: int
    tax_fen: int


def cumulative_tax(gross_fen: int, month: int, prior: list[PriorPayout]) -> int:
    """cn_platform_cumulative: the tax to withhold from this month's gross."""
    if gross_fen < 0:
        raise ValueError("gross must be ≥ 0")
    cum_income = gross_fen + sum(p.gross_fen for p in prior)
    paid_months = {p.month for p in prior if p.gross_fen > 0} | {month}
    months = 0
    m = month
    while m >= 1 and m in paid_months:
        months += 1
        m -= 1
    cum_taxable = Decimal(cum_income) * Decimal("0.8") - MONTHLY_DEDUCTION_FEN * months
    if cum_taxable < 0:
        cum_taxable = Decimal(0)
    cum_tax = 0
    for upto_cny, rate, quick_cny in CUMULATIVE_TABLE:
        if upto_cny is None or cum_taxable <= upto_cny * 100:
            cum_tax = round_fen(cum_taxable * rate - quick_cny * 100)
            break
    withheld = sum(p.tax_fen for p in prior)
    return max(cum_tax - withheld, 0)


def per_payment_tax(gross_fen: int) -> int:
    """cn_labor_per_payment: the older per-payment rule on X fen."""
    x = Decimal(gross_fen)
    if gross_fen <= 80000:
        return 0
    taxable = x - 80000 if gross_fen <= 400000 else x * Decimal("0.8")
    if taxable <= 2000000:
        return round_fen(taxable * Decimal("0.2"))
    if taxable <= 5000000:
        return round_fen(taxable * Decimal("0.3") - 200000)
    return round_fen(taxable * Decimal("0.4") - 700000)


def withhold(rule: str, gross_fen: int, month: int, prior: list[PriorPayout]) -> int:
    if rule == "cn_platform_cumulative":
        return cumulative_tax(gross_fen, month, prior)
    if rule == "cn_labor_per_payment":
        return per_payment_tax(gross_fen)
    if rule == "none":
        return 0
    raise ValueError(f"unknown tax rule {rule!r}")
