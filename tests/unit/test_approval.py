"""Approval of a released batch (rulebook §10): no transfer instructions before a second person
approves; the releaser cannot approve; periods are approved in order; the released files never
change; `verify` checks the approval record and the files it added; every change of money is
logged with who made it. A real SQLite registry and the release's own functions."""

import json
import os

import pytest

from o2p import release
from o2p.approval import approve
from o2p.config import load_config
from o2p.errors import InputError
from o2p.reference import Promoter
from o2p.registry import Registry
from tests.conftest import run_o2p
from tests.releasing import entitlement, release_period


def _release(cfg, period, released_by):
    promoters = {p: Promoter(p, None, "g", f"B{p}", f"o{p}", name, 0, None)
                 for p, name in (("P1", "=推客一"), ("P2", "推客二"))}
    ents = [entitlement(p, f"O{p}{period}", e) for p, e in (("P1", 250_000), ("P2", 1200))]
    folder, _ = release_period(cfg, period, ents, promoters, released_by=released_by)
    return folder, {n: (folder / n).read_bytes() for n in os.listdir(folder)}


@pytest.fixture
def home(tmp_path):
    cfg_file = tmp_path / "o2p.yaml"
    cfg_file.write_text("payout:\n  require_approval: true\n  wechat_appid: wx1234567890abcdef\n")
    return load_config(cfg_file, home=tmp_path / "home"), cfg_file


def test_no_transfer_instructions_before_a_second_person_approves(home):
    cfg, _ = home
    folder, released = _release(cfg, "2026-10", "li")
    reg = Registry(cfg.registry)
    assert not (folder / "wechat_transfer.json").exists()
    assert json.loads(released["manifest.json"])["approval_required"] is True
    assert release.verify(folder, reg) == []                       # awaiting approval is not a problem
    with pytest.raises(InputError, match="li released 2026-10: a second person must approve it"):
        approve(cfg, "2026-10", "li")
    assert reg.approval("2026-10") is None and not (folder / "wechat_transfer.json").exists()

    got, rec, fresh = approve(cfg, "2026-10", "wang")
    assert got == folder and fresh and rec["approved_by"] == "wang"
    assert {n: (folder / n).read_bytes() for n in released} == released   # the released files never change
    transfers = json.loads((folder / "wechat_transfer.json").read_text())
    assert [(t["appid"], t["openid"], t["transfer_amount"], t.get("user_name")) for t in transfers] == [
        ("wx1234567890abcdef", "oP1", 250_000, "=推客一"), ("wx1234567890abcdef", "oP2", 1200, None)]  # JSON: raw text
    doc = json.loads((folder / "approval.json").read_text())
    assert (doc["released_by"], doc["approved_by"], doc["manifest_sha256"]) == (
        "li", "wang", release.sha256_bytes(released["manifest.json"]))
    assert release.verify(folder, reg) == []
    assert [(a["who"], a["action"]) for a in reg.history("2026-10")] == [("li", "release"), ("wang", "approve")]

    # approving again changes nothing
    before = {n: (folder / n).read_bytes() for n in ("approval.json", "wechat_transfer.json")}
    _, rec2, fresh2 = approve(cfg, "2026-10", "zhao")
    assert not fresh2 and rec2["approved_by"] == "wang"
    assert {n: (folder / n).read_bytes() for n in before} == before


@pytest.mark.parametrize("victim", ["approval.json", "wechat_transfer.json"])
def test_verify_fails_when_the_approval_or_its_transfers_are_altered(home, victim):
    cfg, _ = home
    folder, _ = _release(cfg, "2026-10", "li")
    approve(cfg, "2026-10", "wang")
    path = folder / victim
    path.write_bytes(path.read_bytes().replace(b"wang", b"wong").replace(b"250000", b"350000"))
    problems = release.verify(folder, Registry(cfg.registry))
    assert problems and all(victim in p for p in problems), problems


def test_periods_are_approved_in_order(home):
    cfg, _ = home
    _release(cfg, "2026-10", "li")
    _release(cfg, "2026-11", "li")           # releasing P+1 does not need P's approval
    with pytest.raises(InputError, match="approve 2026-10 first"):
        approve(cfg, "2026-11", "wang")
    approve(cfg, "2026-10", "wang")
    approve(cfg, "2026-11", "wang")


def test_an_approval_that_stopped_before_its_files_does_not_open_the_next_period(home):
    cfg, _ = home
    folder, _ = _release(cfg, "2026-10", "li")
    _release(cfg, "2026-11", "li")
    reg = Registry(cfg.registry)
    # the approver's process died between the registry row and the files
    reg.approve("2026-10", reg.batch("2026-10")["batch_id"], approved_by="wang",
                manifest_sha256=release.sha256_file(folder / "manifest.json"), approval_sha256="")
    with pytest.raises(InputError, match="approve 2026-10 first"):
        approve(cfg, "2026-11", "zhao")
    _, rec, fresh = approve(cfg, "2026-10", "zhao")     # finishes wang's approval, as wang's
    assert not fresh and rec["approved_by"] == "wang" and (folder / "approval.json").is_file()
    assert release.verify(folder, reg) == []
    approve(cfg, "2026-11", "zhao")


def test_a_batch_released_without_approval_has_its_transfers_and_nothing_to_approve(tmp_path):
    cfg = load_config(None, home=tmp_path / "home")
    folder, _ = _release(cfg, "2026-10", "li")
    assert (folder / "wechat_transfer.json").is_file()
    with pytest.raises(InputError, match="released without approval"):
        approve(cfg, "2026-10", "wang")


def test_the_cli_refuses_the_releaser_with_exit_2_and_names_who_approved(home):
    cfg, cfg_file = home
    _release(cfg, "2026-10", "li")
    env = {"O2P_CONFIG": str(cfg_file), "O2P_HOME": str(cfg.home_path), "O2P_USER": "li"}
    refused = run_o2p("payouts", "approve", "--period", "2026-10", env=env, check=False)
    assert refused.returncode == 2 and "a second person must approve it" in refused.stderr
    ok = run_o2p("--as", "wang", "payouts", "approve", "--period", "2026-10", env=env)
    assert ok.stdout.strip().endswith("wechat_transfer.json")
    listed = run_o2p("payouts", "list", env=env).stdout
    assert "by wang" in listed and "li" in listed, listed
    verified = run_o2p("payouts", "verify", str(cfg.payouts_path / "2026-10" / "2026-10-t"), env=env).stdout
    assert "approved by wang" in verified


@pytest.mark.parametrize("approval", [False, True], ids=["at-release", "at-approval"])
def test_verify_checks_the_transfers_pay_exactly_payout_csv(tmp_path, approval):
    """A wechat_transfer.json whose hash was made to match (manifest or approval.json rewritten)
    but which pays another amount or openid than payout.csv and the registry's bills."""
    cfg_file = tmp_path / "o2p.yaml"
    cfg_file.write_text(f"payout:\n  require_approval: {str(approval).lower()}\n")
    cfg = load_config(cfg_file, home=tmp_path / "home")
    folder, _ = _release(cfg, "2026-10", "li")
    if approval:
        approve(cfg, "2026-10", "wang")
    reg = Registry(cfg.registry)
    assert release.verify(folder, reg) == []
    path = folder / "wechat_transfer.json"
    transfers = json.loads(path.read_text())
    transfers[0]["transfer_amount"] += 100                   # P1 paid 1 CNY more
    transfers[1]["openid"] = "o-attacker"                   # P2 paid to someone else
    path.write_text(json.dumps(transfers))
    holder = folder / ("approval.json" if approval else "manifest.json")
    doc = json.loads(holder.read_text())
    doc["files"]["wechat_transfer.json"] = release.sha256_file(path)
    holder.write_text(json.dumps(doc))
    no1, no2 = (release.out_bill_no(doc["batch_id"], p) for p in ("P1", "P2"))
    problems = [p for p in release.verify(folder) if p.startswith("wechat_transfer.json")]
    assert problems == [f"wechat_transfer.json: bill {no1} pays 250100 fen to oP1, payout.csv says 250000 fen to "
                        "oP1 (promoter P1)",
                        f"wechat_transfer.json: bill {no2} pays 1200 fen to o-attacker, payout.csv says 1200 fen to "
                        "oP2 (promoter P2)"], problems
    with_registry = release.verify(folder, reg)
    assert f"wechat_transfer.json: bill {no1} pays 250100 fen to oP1, the registry recorded 250000 fen to oP1" \
        in with_registry, with_registry
