"""`verify` on a real released folder: written by the release's own functions (render, totals,
manifest, write_folder) from a settled period and recorded in a real SQLite registry, in the order
the payout asset (pipelines/assets/payouts/assets.py) uses them; no Kafka, Spark or Dagster.

A released folder holds exactly the files its manifest lists plus manifest.json, each a regular
file: anything added (a file, a hidden file, a subfolder, a link) or a listed file replaced by a
symbolic link (even to the same bytes) is a problem that names the entry."""

import json
import os
import shutil

import pytest

from o2p import release
from o2p.config import load_config
from o2p.reference import Promoter
from o2p.registry import Registry
from o2p.settlement import ledger_entries, settle
from o2p.timeutil import period_end_us
from tests.conftest import run_o2p

PERIOD = "2026-10"
LISTED = ["carried.csv", "payout.csv", "payout.xlsx", "statement.csv", "wechat_transfer.json"]


def _ent(pid, order, entitled):
    return {"promoter_id": pid, "order_id": order, "line_id": "L1", "role": "direct", "entitled_fen": entitled,
            "net_fen": entitled * 10, "rate_e4": 1000, "click_event_id": "c", "attribution_reason": "last_click"}


@pytest.fixture
def released(tmp_path):
    """(folder, registry, home) of a batch released as the payout asset releases one."""
    home = tmp_path / "home"
    home.mkdir()
    cfg = load_config(None, home=home)
    registry = Registry(cfg.registry)
    promoters = {p: Promoter(p, None, "g", f"B{p}", f"o{p}", f"推客{p}", 0, None) for p in ("P1", "P2", "P3")}
    s = settle(PERIOD, period_end_us(PERIOD), [_ent("P1", "O1", 5000), _ent("P2", "O2", 1200), _ent("P3", "O3", 300)],
               {}, {}, promoters, {}, threshold_fen=1000, tax_rule="none")
    batch_id = f"{PERIOD}-test"
    files = release.render(cfg, batch_id, s, promoters)
    tot = release.totals(s)
    files["manifest.json"] = release.manifest(cfg, batch_id, PERIOD, files, tot, "fingerprint", [])
    folder = cfg.payouts_path / PERIOD / batch_id
    registry.claim(PERIOD, batch_id)
    release.write_folder(folder, files)
    registry.complete(
        PERIOD, folder=str(folder), totals=tot,
        files={n: release.sha256_bytes(d) for n, d in files.items() if n != "manifest.json"},
        manifest_sha256=release.sha256_bytes(files["manifest.json"]), config_hash=cfg.config_hash,
        input_fingerprint="fingerprint",
        entries=ledger_entries(s.statement),
        balance_rows=[dict(vars(b)) for b in s.balances], bills=release.bills(batch_id, s, promoters))
    assert sorted(os.listdir(folder)) == sorted(LISTED + ["manifest.json"])
    assert release.verify(folder, registry) == []
    return folder, registry, home


RULE = "a released batch holds exactly the files its manifest lists"


def _extra_file(folder):
    (folder / "notes.txt").write_text("x")
    return f"unexpected file notes.txt in {folder}: {RULE}"


def _hidden_file(folder):
    (folder / ".evil").write_bytes(b"")
    return f"unexpected file .evil in {folder}: {RULE}"


def _empty_subfolder(folder):
    (folder / "sub").mkdir()
    return f"unexpected folder sub in {folder}: {RULE}"


def _subfolder_with_copies(folder):
    # a subfolder holding byte-identical copies of the released files is still not the release
    (folder / "old").mkdir()
    for name in LISTED:
        shutil.copy(folder / name, folder / "old" / name)
    return f"unexpected folder old in {folder}: {RULE}"


def _extra_symlink(folder):
    (folder / "link.csv").symlink_to("payout.csv")
    return f"unexpected symbolic link link.csv in {folder}: {RULE}"


def _listed_file_is_symlink(folder):
    # same bytes, kept outside the folder; the link in place of payout.csv is not the released file
    copy = folder.parent / "payout-copy.csv"
    shutil.copy(folder / "payout.csv", copy)
    (folder / "payout.csv").unlink()
    (folder / "payout.csv").symlink_to(copy)
    return "payout.csv: a symbolic link, not the released file (a released batch holds regular files only)"


def _listed_file_is_folder(folder):
    (folder / "carried.csv").unlink()
    (folder / "carried.csv").mkdir()
    return "carried.csv: a folder, not the released file (a released batch holds regular files only)"


def _manifest_is_symlink(folder):
    copy = folder.parent / "manifest-copy.json"
    shutil.copy(folder / "manifest.json", copy)
    (folder / "manifest.json").unlink()
    (folder / "manifest.json").symlink_to(copy)
    return f"{folder / 'manifest.json'}: a symbolic link, not the released manifest"


def _missing_file(folder):
    (folder / "statement.csv").unlink()
    return "statement.csv: missing"


def _odd_name(folder):
    (folder / "OK\nfake").write_text("x")   # printed quoted, on one line
    return f"unexpected file 'OK\\nfake' in {folder}: {RULE}"


@pytest.mark.parametrize("change", [
    _extra_file, _hidden_file, _empty_subfolder, _subfolder_with_copies, _extra_symlink,
    _listed_file_is_symlink, _listed_file_is_folder, _manifest_is_symlink, _missing_file, _odd_name,
], ids=lambda f: f.__name__.strip("_"))
def test_verify_names_what_is_not_the_released_folder(released, change):
    folder, registry, _ = released
    want = change(folder)
    assert release.verify(folder, registry) == [want]
    assert release.verify(folder) == [want]          # without the registry too


def test_manifest_naming_a_path_outside_the_folder_is_a_problem(released):
    folder, _, _ = released
    man = json.loads((folder / "manifest.json").read_text())
    man["files"]["../payout-elsewhere.csv"] = man["files"]["payout.csv"]
    (folder / "manifest.json").write_text(json.dumps(man))
    assert ("manifest.json: lists '../payout-elsewhere.csv', not the name of a file in the batch folder"
            in release.verify(folder))


def test_cli_verify_fails_on_a_hidden_file_and_passes_once_it_is_gone(released):
    folder, _, home = released
    env = {"O2P_HOME": str(home), "O2P_CONFIG": ""}
    assert "OK" in run_o2p("payouts", "verify", str(folder), env=env).stdout
    (folder / ".evil").write_bytes(b"")
    out = run_o2p("payouts", "verify", str(folder), env=env, check=False)
    assert out.returncode == 1 and f"FAIL unexpected file .evil in {folder}: {RULE}" in out.stdout
    (folder / ".evil").unlink()
    assert run_o2p("payouts", "verify", str(folder), env=env).returncode == 0
