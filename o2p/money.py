"""Money is integer fen (rulebook §0). Rounding is ROUND_HALF_UP, only where the rulebook says:
tax here (`round_fen`, used by o2p/tax.py); commission in the warehouse, by the dbt macro
`round_half_up_fen` (integer arithmetic on rate_e4 × net, the same rule)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal


def round_fen(x: Decimal) -> int:
    """round(x): half up of an exact decimal to an integer fen."""
    if not isinstance(x, Decimal):
        raise TypeError("round_fen takes an exact Decimal")
    return int(x.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def fen_to_cny(fen: int) -> str:
    """1234.50 — two places, exact, for payout files."""
    if not isinstance(fen, int):
        raise TypeError("amounts are integer fen")
    sign = "-" if fen < 0 else ""
    q, r = divmod(abs(fen), 100)
    return f"{sign}{q}.{r:02d}"


def cny_to_fen(text: str) -> int:
    """'1234.50' → 123450: the inverse of fen_to_cny, exact; anything else is refused."""
    import re

    if not isinstance(text, str) or not re.fullmatch(r"-?\d+\.\d{2}", text):
        raise ValueError(f"{text!r} is not an amount in CNY with two decimals")
    sign = -1 if text.startswith("-") else 1
    whole, cents = text.lstrip("-").split(".")
    return sign * (int(whole) * 100 + int(cents))
