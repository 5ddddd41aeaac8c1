import pytest

from o2p.cli import main
from o2p.config import load_config
from o2p.errors import InputError
from o2p.reference import load_reference

GOOD_PROMOTERS = "promoter_id,upline_id,tier,buyer_id,payee_openid,payee_name,joined_at,suspended_at\nP1,,gold,B1,o1,n1,2026-01-01T00:00:00+08:00,\n"
GOOD_PRODUCTS = "sku_id,product_id,brand,category\nS1,P,B,C\n"
GOOD_RULES = "rule_id,scope,scope_value,rate,effective_from,effective_to\nR0,default,,0.0500,2025-01-01T00:00:00+08:00,\n"


def test_defaults_load_and_hash_is_stable(tmp_path):
    a = load_config(None, home=tmp_path)
    b = load_config(None, home=tmp_path)
    assert a.attribution.model == "last_click" and a.tax == "cn_platform_cumulative"
    assert a.commission.override_rates == ["0.02"] and a.settlement.payout_threshold_fen == 1000
    assert a.config_hash == b.config_hash and len(a.config_hash) == 64


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
    ref = load_reference(_ref(tmp_path))
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
        load_reference(_ref(tmp_path, **kwargs))
    assert expect in str(exc.value)
