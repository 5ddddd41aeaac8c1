"""The monthly page's rendering (o2p report): pure functions over gathered figures."""

import json
import re

from o2p.monthly_report import Report, render


def data_of(page: str) -> dict:
    block = re.search(r'<script type="application/json" id="o2p-report-data">(.*?)</script>', page, re.S)
    return json.loads(block.group(1).replace("<\\/", "</"))


def test_an_unreleased_period_with_nothing_paid_says_so_and_draws_no_chart():
    page = render(Report(period="2026-10", source="/x/o2p_bi.duckdb"))
    assert "not released yet" in page and "no order paid in the period" in page
    assert "no commission estimated for orders of the period" in page
    assert "nobody paid" in page and "<svg" not in page
    assert data_of(page)["period"] == "2026-10"


def test_amounts_are_cny_from_integer_fen_and_text_is_escaped():
    r = Report(period="2026-10", source="s", batch={"batch_id": "B<1>", "folder": "f", "row_count": 1, "gross_fen": 100005,
                                                   "tax_fen": -1, "net_fen": 100006, "released_at": "t",
                                                   "released_by": "李<script>", "approved_by": None},
               daily=[{"day": "2026-10-01", "orders": 2, "attributed_orders": 1, "gmv_fen": 1234, "commission_fen": 123}],
               estimated_vs_settled={"estimated_fen": 500, "settled_fen": 300, "pending_fen": -50, "voided_fen": 200,
                                     "carried_fen": 50},
               top_promoters=[{"promoter_id": "P&1", "gross_fen": 100005, "tax_fen": 0, "net_fen": 100005}])
    page = render(r)
    assert '<span data-fen="100005">1000.05</span>' in page and '<span data-fen="-1">-0.01</span>' in page
    assert "李&lt;script&gt;" in page and "B&lt;1&gt;" in page and "P&amp;1" in page
    assert "<script>" not in page.replace('<script type="application/json" id="o2p-report-data">', "")
    assert page.count("<svg") == 3    # by day, estimated vs settled, top promoters
    assert '<td>pending</td><td class="num"><span data-fen="-50">-0.50</span>' in page
    assert data_of(page)["batch"]["released_by"] == "李<script>"
