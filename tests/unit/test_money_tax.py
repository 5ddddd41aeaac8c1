from decimal import Decimal

import pytest

from o2p.money import fen_to_cny, round_fen
from o2p.tax import PriorPayout, cumulative_tax, per_payment_tax, withhold


def test_round_half_up_at_exactly_half():
    assert round_fen(Decimal("100.5")) == 101
    assert round_fen(Decimal("100.4999")) == 100
    assert round_fen(Decimal("0.02") * 5025) == 101            # 100.5 → 101
    assert round_fen(Decimal("0.1250") * 4) == 1               # 0.5 → 1
    assert round_fen(Decimal("-0.5")) == -1                    # half away from zero (tax never negative)


def test_round_refuses_floats():
    with pytest.raises(TypeError):
        round_fen(100.5)


def test_fen_to_cny():
    assert fen_to_cny(123450) == "1234.50"
    assert fen_to_cny(5) == "0.05"
    assert fen_to_cny(-1005) == "-10.05"


def test_per_payment_edges():
    assert per_payment_tax(80000) == 0                        # ≤ 800 CNY
    assert per_payment_tax(80001) == 0                        # taxable 1 fen × 20% = 0.2 → 0
    assert per_payment_tax(80003) == 1                        # 3 × 0.2 = 0.6 → 1
    assert per_payment_tax(400000) == 64000                   # (400000 − 80000) × 20%
    assert per_payment_tax(400001) == 64000                   # 400001 × 0.8 = 320000.8 × 0.2 = 64000.16
    assert per_payment_tax(2500000) == 400000                 # taxable 2000000 × 20%
    assert per_payment_tax(2500002) == 400000                 # taxable 2000001.6 × 30% − 200000 = 400000.48
    assert per_payment_tax(10000000) == 2500000               # 8000000 × 40% − 700000


def test_cumulative_first_month_below_deduction():
    assert cumulative_tax(600000, 1, []) == 0                 # 6000 × 0.8 = 4800 − 5000 < 0


def test_cumulative_brackets_and_withheld():
    # January: gross 10000 CNY → taxable 8000 − 5000 = 3000 CNY × 3% = 90 CNY.
    assert cumulative_tax(1000000, 1, []) == 9000
    # February, paid again: cum income 20000 → 16000 − 10000 = 6000 × 3% = 180 − 90 withheld = 90.
    assert cumulative_tax(1000000, 2, [PriorPayout(1, 1000000, 9000)]) == 9000
    # A month without payout resets the count: March only → months = 1.
    # cum income 20000 CNY → 16000 − 5000 = 11000 × 3% = 330 − 90 = 240 CNY.
    assert cumulative_tax(1000000, 3, [PriorPayout(1, 1000000, 9000)]) == 24000


def test_cumulative_second_bracket_edge():
    # taxable exactly 36000 CNY stays at 3%: income × 0.8 − 5000 = 36000 → income 51250 CNY.
    assert cumulative_tax(5125000, 1, []) == 108000
    # 1 fen more of income: taxable 36000.008 CNY → 10% − 2520 = 1080.0008 CNY → 108000 fen.
    assert cumulative_tax(5125001, 1, []) == 108000


def test_withhold_none():
    assert withhold("none", 999999, 5, []) == 0
