"""Files for people (rulebook §8): every CSV starts with a BOM, gives money in CNY with two
decimals and carries batch_id and period; a text cell that a spreadsheet would run as a formula
is written with a leading `'` (OWASP CSV injection), while JSON keeps the raw text; payout.xlsx
types ids as text and money as numbers, and is the same bytes every time it is written."""

import csv
import io
import json

import openpyxl
import pytest

from o2p import release
from o2p.config import load_config
from o2p.errors import InputError
from o2p.money import cny_to_fen, fen_to_cny
from o2p.reference import Promoter
from o2p.settlement import settle
from o2p.timeutil import period_end_us

PERIOD = "2026-10"
HOSTILE = ["=HYPERLINK(\"http://x\",\"点击\")", "+86 138", "-2+3", "@SUM(A1)", "\tTAB", "\rCR"]


def _ent(pid, order, entitled, line="L1"):
    return {"promoter_id": pid, "order_id": order, "line_id": line, "role": "direct", "entitled_fen": entitled,
            "net_fen": entitled * 10, "rate_e4": 1000, "click_event_id": "=c1", "attribution_reason": "last_click"}


@pytest.fixture
def files(tmp_path):
    cfg = load_config(None, home=tmp_path)
    # payees named as a CRM export can name them; order ids as an upstream can send them
    promoters = {f"P{i}": Promoter(f"P{i}", None, "g", f"B{i}", f"o{i}", name, 0, None)
                 for i, name in enumerate(HOSTILE)}
    promoters["-P9"] = Promoter("-P9", None, "g", "B9", "o9", "普通", 0, None)
    ents = [_ent(p, f"=O{i}", 6000 + i) for i, p in enumerate(promoters) if p != "P0"] + [
        _ent("P0", "4200000000000000000000000001", 5300, "L2")]
    s = settle(PERIOD, period_end_us(PERIOD), ents, {}, {}, promoters, {}, threshold_fen=6000, tax_rule="none")
    return release.render(cfg, f"{PERIOD}-test", s, promoters), s


def _rows(data: bytes) -> list[list[str]]:
    assert data.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))


def test_every_csv_has_a_bom_cny_and_batch_and_period(files):
    f, _ = files
    for name, cols in (("payout.csv", release.PAYOUT_COLUMNS), ("statement.csv", release.STATEMENT_COLUMNS),
                       ("carried.csv", release.CARRIED_COLUMNS)):
        rows = _rows(f[name])
        assert rows[0] == cols and rows[0][:2] == ["batch_id", "period"], name
        assert rows[1:] and all(r[0] == f"{PERIOD}-test" and r[1] == PERIOD for r in rows[1:]), name
        for r in rows[1:]:
            for c, v in zip(cols, r, strict=True):
                if c.endswith("_cny"):
                    assert fen_to_cny(cny_to_fen(v)) == v, (name, c, v)   # exactly two decimals, CNY


def test_formula_cells_are_neutralised_in_csv_and_raw_in_json(files):
    f, _ = files
    payout = _rows(f["payout.csv"])[1:]
    names = {r[2]: r[3] for r in payout}
    for i, raw in enumerate(HOSTILE[1:], start=1):   # P0 is below the threshold: carried
        assert names[f"P{i}"] == "'" + raw, (raw, names)
    assert names["'-P9"] == "普通"                     # an id starting with '-' too
    statement = _rows(f["statement.csv"])[1:]
    assert {r[3] for r in statement} >= {"'=O1", "4200000000000000000000000001"}
    assert {r[6] for r in statement} == {"'=c1"}
    carried = _rows(f["carried.csv"])[1:]
    assert [(r[2], r[3], r[6], r[7]) for r in carried] == [("P0", "0.00", "53.00", "below_threshold")]
    # money is never text: a negative amount keeps its sign (no quote)
    transfers = json.loads(f["wechat_transfer.json"])
    assert {t["user_name"] for t in transfers if "user_name" in t} == set()
    assert {t["appid"] for t in transfers} == {"wx0000000000000000"}
    # the reader gets the raw text back
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "payout.csv"
        p.write_bytes(f["payout.csv"])
        back = {r["promoter_id"]: r for r in release.read_people_csv(p)}
    assert back["P1"]["payee_name"] == HOSTILE[1] and back["-P9"]["gross_fen"] == 6006


def test_negative_amounts_are_numbers_not_neutralised():
    assert release.neutralise("-3000") == "'-3000"     # as text it would be
    rows = _rows(release._csv([["b", PERIOD, "P1", "-30.00", "0.00", "-30.00", "-30.00", "negative"]],
                              ["batch_id", "period", "promoter_id", "carried_in_cny", "returned_cny", "movement_cny",
                               "balance_cny", "reason"]))
    assert rows[1][3:7] == ["-30.00", "0.00", "-30.00", "-30.00"]


def test_the_workbook_types_ids_as_text_and_money_as_numbers_and_is_reproducible(files, tmp_path):
    f, s = files
    path = tmp_path / "payout.xlsx"
    path.write_bytes(f["payout.xlsx"])
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == ["payout", "statement", "carried", "summary"]
    ws = wb["payout"]
    assert [c.value for c in ws[1]] == release.PAYOUT_COLUMNS
    first = {r[2].value: r for r in ws.iter_rows(min_row=2)}
    row = first["P1"]
    assert (row[3].value, row[3].data_type) == (HOSTILE[1], "s")          # text, never a formula
    assert (row[5].value, row[5].data_type, row[5].number_format) == (60.01, "n", "0.00")
    st = {r[3].value: r for r in wb["statement"].iter_rows(min_row=2)}
    long_id = st["4200000000000000000000000001"]
    assert long_id[3].data_type == "s" and long_id[10].number_format == "0.00"   # no 4.2E+27
    assert st["=O1"][3].data_type == "s"
    summary = {r[0].value: r[1].value for r in wb["summary"].iter_rows(min_row=2)}
    assert summary["batch_id"] == f"{PERIOD}-test" and summary["promoters_paid"] == len(s.paid)
    assert summary["net_cny"] == float(fen_to_cny(sum(b.net_fen for b in s.paid)))
    cfg = load_config(None, home=tmp_path)
    again = release.render(cfg, f"{PERIOD}-test", s, _promoters())
    assert again["payout.xlsx"] == f["payout.xlsx"]                       # byte for byte


def test_a_statement_longer_than_the_workbook_limit_is_named_there_and_whole_in_the_csv(files, tmp_path):
    """payout.workbook_statement_rows: past it the statement sheet holds one line naming
    statement.csv (a sheet holds 1,048,575 rows at most, and openpyxl took 110 s for a mid-size
    month's 400k lines); the CSV keeps every line; payout, carried and summary are as always."""
    f, s = files
    lines = len(_rows(f["statement.csv"])) - 1
    summary = {r[0].value: r[1].value for r in openpyxl.load_workbook(io.BytesIO(f["payout.xlsx"]))["summary"].iter_rows(min_row=2)}
    assert (summary["statement_lines"], summary["statement_sheet"]) == (lines, "every line")
    (tmp_path / "o2p.yaml").write_text(f"payout:\n  workbook_statement_rows: {lines - 1}\n")
    cfg = load_config(tmp_path / "o2p.yaml", home=tmp_path)
    small = release.render(cfg, f"{PERIOD}-test", s, _promoters())
    assert small["statement.csv"] == f["statement.csv"] and small["payout.csv"] == f["payout.csv"]
    wb = openpyxl.load_workbook(io.BytesIO(small["payout.xlsx"]))
    assert wb.sheetnames == ["payout", "statement", "carried", "summary"]
    assert [[c.value for c in r] for r in wb["statement"].iter_rows()] == [[
        f"This batch's statement has {lines} lines, more than a workbook holds here "
        f"(payout.workbook_statement_rows = {lines - 1}): every line is in statement.csv, in this folder."]]
    full = openpyxl.load_workbook(io.BytesIO(f["payout.xlsx"]))
    for sheet in ("payout", "carried"):
        assert [[c.value for c in r] for r in wb[sheet].iter_rows()] == [[c.value for c in r] for r in full[sheet].iter_rows()]
    summary = {r[0].value: r[1].value for r in wb["summary"].iter_rows(min_row=2)}
    assert (summary["statement_lines"], summary["statement_sheet"]) == (lines, "statement.csv only (see the sheet)")
    with pytest.raises(InputError, match="workbook_statement_rows"):   # more than a sheet can hold
        (tmp_path / "o2p.yaml").write_text("payout:\n  workbook_statement_rows: 1048576\n")
        load_config(tmp_path / "o2p.yaml", home=tmp_path)


def _promoters():
    p = {f"P{i}": Promoter(f"P{i}", None, "g", f"B{i}", f"o{i}", name, 0, None) for i, name in enumerate(HOSTILE)}
    p["-P9"] = Promoter("-P9", None, "g", "B9", "o9", "普通", 0, None)
    return p


def test_a_control_character_in_reference_data_is_refused_naming_file_row_and_field(tmp_path):
    """A payee name with \\x01 would reach payout.csv and payout.xlsx (openpyxl cannot write it):
    refused where it enters, before any money is touched."""
    from o2p.errors import InputError
    from o2p.reference import load_reference

    (tmp_path / "promoters.csv").write_text(
        "promoter_id,upline_id,tier,buyer_id,payee_openid,payee_name,joined_at,suspended_at\n"
        "P1,,gold,B1,o1,推客\x01甲,2026-01-01T00:00:00+08:00,\n", encoding="utf-8")
    (tmp_path / "products.csv").write_text("sku_id,product_id,brand,category\nSKU1,PR1,X,beauty\n", encoding="utf-8")
    (tmp_path / "commission_rules.csv").write_text(
        "rule_id,scope,scope_value,rate,effective_from,effective_to\nR0,default,,0.1000,2025-01-01T00:00:00+08:00,\n",
        encoding="utf-8")
    with pytest.raises(InputError, match=r"promoters\.csv:2: payee_name: control character U\+0001"):
        load_reference(tmp_path, encoding=None)


def test_an_upstream_id_with_a_control_character_does_not_stop_the_release():
    from o2p.workbook import payout_workbook

    data = payout_workbook("b", PERIOD, [("statement", ["order_id", "movement_cny"], [["O\x01X", "1.00"]])],
                           {"row_count": 0, "gross_fen": 0, "tax_fen": 0, "net_fen": 0}, {"movement_cny"})
    ws = openpyxl.load_workbook(io.BytesIO(data))["statement"]
    assert ws["A2"].value == "O\\x01X" and ws["B2"].value == 1
