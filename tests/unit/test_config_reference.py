import pytest

from o2p.cli import main
from o2p.config import load_config
from o2p.errors import InputError
from o2p.reference import load_reference

GOOD_PROMOTERS = "promoter_id,upline_id,tier,buyer_id,payee_openid,payee_name,joined_at,suspended_at\nP1,,gold,B1,o1,n1,2026-01-01T00:00:00+08:00,\n"
GOOD_PRODUCTS = "sku_id,product_id,brand,category\nS1,P,B,C\n"
GOOD_RULES = "rule_id,scope,scope_value,rate,effective_from,effective_to\nR0,default,,0.0500,2025-01-01T00:00:00+08:00,\n"


def test_defaults_load_and_hash_is_stable(tmp_path, monkeypatch):
    monkeypatch.delenv("O2P_CONFIG", raising=False)     # the defaults, whatever the environment names
    a = load_config(None, home=tmp_path)
    b = load_config(None, home=tmp_path)
    assert a.attribution.model == "last_click" and a.tax == "cn_platform_cumulative"
    assert a.commission.override_rates == ["0.02"] and a.settlement.payout_threshold_fen == 1000
    assert a.config_hash == b.config_hash and len(a.config_hash) == 64


def test_every_default_is_in_default_config_yaml_only(tmp_path, monkeypatch):
    """One home for defaults (issue #13): the models declare types and bounds, no values; the
    shipped YAML gives every key, and a key missing there is an error naming it."""
    from pydantic import BaseModel

    from o2p import config

    def fields(model, prefix=""):
        for name, f in model.model_fields.items():
            if name in ("source", "home"):
                continue
            yield prefix + name, f
            ann = f.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                yield from fields(ann, prefix + name + ".")

    with_defaults = [n for n, f in fields(config.Config) if not f.is_required()]
    assert with_defaults == [], with_defaults
    shipped = config.default_config_text()
    assert "  return_window_days: 7" in shipped
    monkeypatch.setattr(config, "default_config_text", lambda: shipped.replace("  return_window_days: 7", "  #"))
    with pytest.raises(InputError, match="settlement.return_window_days: Field required"):
        load_config(None, home=tmp_path)


def test_partial_config_keeps_other_defaults(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("tax: none\nkafka:\n  topics:\n    clicks: my.clicks\n")
    cfg = load_config(f, home=tmp_path)
    assert cfg.tax == "none" and cfg.kafka.topics.clicks == "my.clicks" and cfg.kafka.topics.orders == "o2p.orders.v1"
    assert cfg.config_hash != load_config(None, home=tmp_path).config_hash


@pytest.mark.parametrize("text, path, reason", [
    ("attribution:\n  modle: last_click\n", "attribution.modle", "unknown key"),
    ("tax: flat\n", "tax", "Input should be"),
    ("commission:\n  override_rates: ['0.02', '0.01']\n", "commission.override_rates", "pyramid"),
    ("commission:\n  override_rates: ['0.12345']\n", "commission.override_rates", "more than 4 decimals"),
    ("kafka:\n  bootstrap_servers: nohost\n", "kafka.bootstrap_servers", "not host:port"),
    ("reference_encoding: klingon\n", "reference_encoding", "not a text encoding Python knows"),
    ("reference_encoding: base64\n", "reference_encoding", "not a text encoding Python knows"),
    ("reference_encoding: 936\n", "reference_encoding", "not an encoding name"),
])
def test_bad_config_names_key_path(tmp_path, text, path, reason):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(InputError) as exc:
        load_config(f, home=tmp_path)
    msg = str(exc.value)
    assert str(f) in msg and path in msg and reason in msg


def test_cli_exits_2_on_bad_config(tmp_path, capsys):
    f = tmp_path / "bad.yaml"
    f.write_text("tax: flat\n")
    assert main(["--config", str(f), "--home", str(tmp_path), "kafka", "status"]) == 2
    assert "tax" in capsys.readouterr().err


def _ref(tmp_path, promoters=GOOD_PROMOTERS, products=GOOD_PRODUCTS, rules=GOOD_RULES):
    (tmp_path / "promoters.csv").write_text(promoters)
    (tmp_path / "products.csv").write_text(products)
    (tmp_path / "commission_rules.csv").write_text(rules)
    return tmp_path


def test_good_reference(tmp_path):
    ref = load_reference(_ref(tmp_path), encoding=None)
    assert list(ref.promoters) == ["P1"] and ref.rules[0].rate == ref.rules[0].rate.__class__("0.0500")


@pytest.mark.parametrize("kind, text, expect", [
    ("rules", GOOD_RULES + "R1,category,C,1.5,2025-01-01T00:00:00+08:00,\n", "commission_rules.csv:3: rate"),
    ("rules", GOOD_RULES + "R1,default,,0.06,2025-01-01T00:00:00+08:00,\n", "commission_rules.csv:3: effective_from: same scope"),
    ("rules", GOOD_RULES + "R1,region,north,0.06,2025-01-01T00:00:00+08:00,\n", "commission_rules.csv:3: scope"),
    ("promoters", "promoter_id,upline_id,tier,buyer_id,payee_openid,payee_name,joined_at,suspended_at\n"
                  "P1,P2,g,B1,o,n,2026-01-01T00:00:00+08:00,\nP2,P1,g,B2,o,n,2026-01-01T00:00:00+08:00,\n", "cycle"),
    ("promoters", "promoter_id,tier\nP1,g\n", "promoters.csv:1: missing column(s)"),
    ("promoters", GOOD_PROMOTERS.replace("2026-01-01T00:00:00+08:00", "yesterday"), "promoters.csv:2: joined_at"),
])
def test_bad_reference_names_file_row_field(tmp_path, kind, text, expect):
    kwargs = {kind: text}
    with pytest.raises(InputError) as exc:
        load_reference(_ref(tmp_path, **kwargs), encoding=None)
    assert expect in str(exc.value)


# ---- encodings, empty files, upline cycles (rulebook v2 §2) ----------------------------------------
PROMOTERS_HEAD = "promoter_id,upline_id,tier,buyer_id,payee_openid,payee_name,joined_at,suspended_at"
# As the CRM exports them: a row of plain ASCII first, then Chinese payee names (row 3 on).
CHINESE_PROMOTERS = "\r\n".join([
    PROMOTERS_HEAD,
    "P1,,gold,B1,o1,Li Na,2026-01-01T00:00:00+08:00,",
    "P2,P1,gold,B2,o2,张伟,2026-01-01T00:00:00+08:00,",
    "P3,P1,silver,B3,o3,王芳,2026-01-01T00:00:00+08:00,",
]) + "\r\n"
NAMES = {"P1": "Li Na", "P2": "张伟", "P3": "王芳"}


def _ref_bytes(tmp_path, name, data: bytes):
    _ref(tmp_path)
    (tmp_path / name).write_bytes(data)
    return tmp_path


def _config(tmp_path, encoding):
    f = tmp_path / "o2p.yaml"
    f.write_text(f"reference_encoding: {encoding}\n" if encoding is not None else "")
    return load_config(f, home=tmp_path / "home")


def _refused(directory, encoding=None) -> str:
    with pytest.raises(InputError) as exc:
        load_reference(directory, encoding=encoding)
    return str(exc.value)


def test_reference_encoding_is_validated_and_normalised(tmp_path):
    assert _config(tmp_path, None).reference_encoding == "utf-8"
    assert _config(tmp_path, "''").reference_encoding == "utf-8"
    assert _config(tmp_path, "null").reference_encoding == "utf-8"
    assert _config(tmp_path, "UTF8").reference_encoding == "utf-8"
    assert _config(tmp_path, "utf-8-sig").reference_encoding == "utf-8"
    assert _config(tmp_path, "GBK").reference_encoding == "gbk"
    assert _config(tmp_path, "cp936").reference_encoding == "gbk"
    # null, empty and utf-8 are one setting: one config hash
    assert _config(tmp_path, "null").config_hash == _config(tmp_path, "utf-8").config_hash


def test_gbk_file_from_excel_is_refused_naming_file_line_and_encoding(tmp_path):
    # Before the fix: a bare UnicodeDecodeError ('utf-8' codec can't decode byte 0xd5 …), no file name.
    ref = _ref_bytes(tmp_path, "promoters.csv", CHINESE_PROMOTERS.encode("gbk"))
    msg = _refused(ref)
    assert f"{ref / 'promoters.csv'}: byte 0xD5 at line 3" in msg
    assert "GB18030 (GBK)" in msg and "CSV UTF-8" in msg and "`reference_encoding: gb18030`" in msg


@pytest.mark.parametrize("setting", ["gb18030", "GBK", "cp936"])
def test_gbk_file_is_read_when_reference_encoding_names_it(tmp_path, setting):
    ref = _ref_bytes(tmp_path, "promoters.csv", CHINESE_PROMOTERS.encode("gbk"))
    cfg = _config(tmp_path, setting)
    promoters = load_reference(ref, encoding=cfg.reference_encoding).promoters
    assert {p: promoters[p].payee_name for p in promoters} == NAMES


def test_gb18030_file_with_a_character_gbk_lacks(tmp_path):
    # 刘䶮: 䶮 (U+4DAE) is in GB18030 but not in GBK, so reference_encoding: gbk is not enough.
    text = CHINESE_PROMOTERS.replace("王芳", "刘䶮")
    ref = _ref_bytes(tmp_path, "promoters.csv", text.encode("gb18030"))
    assert "GB18030" in _refused(ref)
    msg = _refused(ref, "gbk")
    assert "byte 0xFE at line 4" in msg and "is not gbk (reference_encoding)" in msg and "gb18030" in msg
    assert load_reference(ref, encoding="gb18030").promoters["P3"].payee_name == "刘䶮"


@pytest.mark.parametrize("codec, bom, named, setting", [
    ("utf-16-le", b"\xff\xfe", "UTF-16-LE", "utf-16"),    # Excel's "Unicode text", Notepad's "Unicode"
    ("utf-16-be", b"\xfe\xff", "UTF-16-BE", "utf-16"),
    ("utf-32-le", b"\xff\xfe\x00\x00", "UTF-32-LE", "utf-32"),
])
def test_utf16_and_utf32_with_bom_are_refused_unless_configured(tmp_path, codec, bom, named, setting):
    # Before the fix: UnicodeDecodeError for UTF-16 (0xff is never UTF-8); UTF-32-LE starts with
    # the same two bytes.
    ref = _ref_bytes(tmp_path, "promoters.csv", bom + CHINESE_PROMOTERS.encode(codec))
    msg = _refused(ref)
    assert str(ref / "promoters.csv") in msg and named in msg and f"`reference_encoding: {setting}`" in msg
    assert "gb18030" in _refused(ref, "gb18030") or named in _refused(ref, "gb18030")
    promoters = load_reference(ref, encoding=setting).promoters
    assert {p: promoters[p].payee_name for p in promoters} == NAMES


@pytest.mark.parametrize("codec, named", [("utf-16-le", "UTF-16-LE"), ("utf-16-be", "UTF-16-BE"),
                                          ("utf-32-le", "UTF-32-LE")])
def test_utf16_without_bom_is_recognised_by_its_nul_bytes(tmp_path, codec, named):
    # Before the fix: a bare UnicodeDecodeError at the first Chinese character (an ASCII-only
    # UTF-16 file, all valid UTF-8 with NULs, got "missing column(s)" and nothing else).
    ref = _ref_bytes(tmp_path, "promoters.csv", CHINESE_PROMOTERS.encode(codec))
    msg = _refused(ref)
    assert f"{ref / 'promoters.csv'}: the file seems to be in {named} without a byte-order mark" in msg
    assert "missing column" not in msg
    promoters = load_reference(ref, encoding=codec.rsplit("-", 1)[0]).promoters
    assert {p: promoters[p].payee_name for p in promoters} == NAMES
    assert load_reference(ref, encoding=codec).promoters["P2"].payee_name == "张伟"


@pytest.mark.parametrize("setting", [None, "gb18030"])
def test_utf8_with_bom_and_crlf_is_read_whatever_reference_encoding_says(tmp_path, setting):
    # A file re-saved as UTF-8 is never misread as GBK by a config that still says gb18030.
    ref = _ref_bytes(tmp_path, "promoters.csv", b"\xef\xbb\xbf" + CHINESE_PROMOTERS.encode("utf-8"))
    (ref / "products.csv").write_bytes(GOOD_PRODUCTS.replace("\n", "\r\n").replace("B,C", "品牌,类目").encode())
    loaded = load_reference(ref, encoding=setting)
    assert {p: loaded.promoters[p].payee_name for p in loaded.promoters} == NAMES
    assert loaded.promoters["P3"].suspended_at_us is None       # no stray \r in the last field
    assert loaded.products["S1"].brand == "品牌" and loaded.products["S1"].category == "类目"


def test_nul_bytes_in_a_utf8_file_are_refused_naming_the_line(tmp_path):
    # Before the fix: accepted (NUL is valid UTF-8): P3's name silently held a NUL.
    text = CHINESE_PROMOTERS.replace("王芳", "王\0芳").encode("utf-8")
    ref = _ref_bytes(tmp_path, "promoters.csv", text)
    msg = _refused(ref)
    assert f"{ref / 'promoters.csv'}: NUL byte at line 4 (byte offset {text.index(0)}): the file is binary or in UTF-16" in msg


@pytest.mark.parametrize("name, header", [
    ("promoters.csv", PROMOTERS_HEAD + "\n"),
    ("products.csv", GOOD_PRODUCTS.splitlines()[0] + "\r\n"),
    ("commission_rules.csv", GOOD_RULES.splitlines()[0]),           # no line end at all
    ("commission_rules.csv", GOOD_RULES.splitlines()[0] + "\n\n\r\n"),  # blank lines are no rows
])
def test_a_header_without_rows_is_refused(tmp_path, name, header):
    # Before the fix: accepted; an empty promoters.csv or commission_rules.csv stops every payout.
    ref = _ref_bytes(tmp_path, name, header.encode())
    msg = _refused(ref)
    assert f"{ref / name}: has a header and no rows: an export that lost its rows would silently stop every payout" in msg


@pytest.mark.parametrize("name", ["promoters.csv", "products.csv", "commission_rules.csv"])
def test_an_empty_file_is_refused(tmp_path, name):
    # Before the fix: "missing column(s) …" at row 1 (refused, but the reason was wrong).
    ref = _ref_bytes(tmp_path, name, b"")
    assert f"{ref / name}: empty file (0 bytes, not even a header)" in _refused(ref)


def test_every_unreadable_file_is_reported_at_once(tmp_path):
    ref = _ref_bytes(tmp_path, "promoters.csv", CHINESE_PROMOTERS.encode("gbk"))
    (ref / "products.csv").write_bytes(b"")
    msg = _refused(ref)
    assert "promoters.csv: byte 0xD5" in msg and "products.csv: empty file" in msg


def _promoters(*rows: str) -> str:
    return "\n".join([PROMOTERS_HEAD, *(f"{r},g,B{r[1]},o,n,2026-01-01T00:00:00+08:00," for r in rows)]) + "\n"


def test_an_upline_cycle_is_named_once_with_exactly_its_promoters_and_rows(tmp_path):
    # P4 (row 2) reaches the cycle P1 (row 3) -> P2 (row 4) -> P3 (row 5) -> P1 but is not in it.
    # Before the fix: four messages "promoters.csv: upline_id: cycle through promoter 'P4'" …
    # (P4 included, one per promoter reaching the cycle), none naming a row.
    ref = _ref(tmp_path, promoters=_promoters("P4,P1", "P1,P2", "P2,P3", "P3,P1"))
    msg = _refused(ref)
    assert msg.count("upline cycle") == 1
    assert (f"{ref / 'promoters.csv'}:3: upline_id: upline cycle P1 → P2 → P3 → P1 "
            "(rows promoters.csv:3, promoters.csv:4, promoters.csv:5)") in msg
    assert "P4" not in msg and "promoters.csv:2" not in msg


def test_two_cycles_are_each_named_once_from_their_first_row(tmp_path):
    ref = _ref(tmp_path, promoters=_promoters("P3,P1", "P5,P6", "P1,P2", "P2,P3", "P6,P5", "P7,"))
    msg = _refused(ref)
    assert msg.count("upline cycle") == 2
    assert "promoters.csv:2: upline_id: upline cycle P3 → P1 → P2 → P3 (rows promoters.csv:2, promoters.csv:4, promoters.csv:5)" in msg
    assert "promoters.csv:3: upline_id: upline cycle P5 → P6 → P5 (rows promoters.csv:3, promoters.csv:6)" in msg
    assert "P7" not in msg


def test_a_chain_that_ends_is_no_cycle(tmp_path):
    ref = _ref(tmp_path, promoters=_promoters("P1,", "P2,P1", "P3,P2", "P4,P9"))   # P9: not in the file
    assert list(load_reference(ref, encoding=None).promoters) == ["P1", "P2", "P3", "P4"]


def test_cli_exits_2_naming_the_file_of_a_gbk_reference(tmp_path, capsys):
    (tmp_path / "ref").mkdir()
    ref = _ref_bytes(tmp_path / "ref", "promoters.csv", CHINESE_PROMOTERS.encode("gbk"))
    f = tmp_path / "o2p.yaml"
    f.write_text(f"reference_dir: {ref}\n")
    assert main(["--config", str(f), "--home", str(tmp_path / "home"), "run"]) == 2
    err = capsys.readouterr().err
    assert str(ref / "promoters.csv") in err and "GB18030" in err
