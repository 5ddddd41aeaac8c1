"""Approval of a released batch (rulebook §10, issue #12): under `payout.require_approval` a
release writes no transfer instructions; a second person runs `o2p payouts approve --period P`,
which checks the batch, records the approval in the registry and only then writes
`wechat_transfer.json` and `approval.json` (who, when, the manifest's SHA-256, the hash of every
file it wrote) beside the released files, which never change."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy.exc import IntegrityError

from o2p.config import Config
from o2p.errors import InputError, O2PError
from o2p.fsio import write_bytes_atomic
from o2p.registry import Registry
from o2p.release import (
    APPROVAL,
    TRANSFERS,
    read_people_csv,
    sha256_bytes,
    sha256_file,
    transfer_instructions,
    verify,
)


def needs_approval(folder: Path) -> bool:
    try:
        return bool(json.loads((folder / "manifest.json").read_bytes()).get("approval_required"))
    except (OSError, ValueError):
        return False


def _complete(recorded: dict | None) -> bool:
    """An approval whose files were written (one that stopped between the registry and its
    files has no approval_sha256 yet, and is finished by running approve again)."""
    return bool(recorded and recorded["approval_sha256"])


def approve(cfg: Config, period: str, who: str) -> tuple[Path, dict, bool]:
    """(folder, approval record, newly approved). Refusals are InputError (exit 2)."""
    reg = Registry(cfg.registry)
    b = reg.batch(period)
    if not b or b["status"] != "released":
        raise InputError(f"period {period} is not released: nothing to approve "
                         f"(release it first: o2p payouts release --period {period})")
    folder = Path(b["folder"])
    if not needs_approval(folder):
        raise InputError(f"period {period} was released without approval (payout.require_approval was false): "
                         f"its transfer instructions were written at release, in {folder}")
    recorded = reg.approval(period)
    if recorded is None:
        if b["released_by"] and b["released_by"] == who:
            raise InputError(f"{who} released {period}: a second person must approve it (rulebook §10)")
        waiting = [x["period"] for x in reg.released() if x["period"] < period and x["status"] == "released"
                   and needs_approval(Path(x["folder"])) and not _complete(reg.approval(x["period"]))]
        if waiting:
            raise InputError(f"approve {waiting[0]} first: periods are approved in order "
                             f"({', '.join(waiting)} await approval)")
    problems = verify(folder, reg)
    if recorded is None and problems:
        raise O2PError(f"period {period}: the released batch does not verify, nothing approved:\n  "
                       + "\n  ".join(problems))
    if cfg.config_hash != b["config_hash"]:
        # appid, scene, remark and the user_name threshold are the release's: not the approver's
        raise InputError(f"period {period} was released under config {b['config_hash'][:12]}…, this command runs "
                         f"under {cfg.config_hash[:12]}… ({cfg.source}): approve with the release's config")
    # the transfers pay exactly the bills recorded at release (payee, openid, net), raw text
    payees = [(x["promoter_id"], x["payee_name"] or "", x["openid"], x["net_fen"])
              for x in sorted(reg.bills(period=period).values(), key=lambda x: x["promoter_id"])]
    if [p[0] for p in payees] != [r["promoter_id"] for r in read_people_csv(folder / "payout.csv")]:
        raise O2PError(f"period {period}: the registry's transfer bills and payout.csv name different promoters")
    transfers = transfer_instructions(cfg, b["batch_id"], period, payees)
    manifest_sha = sha256_file(folder / "manifest.json")
    fresh = recorded is None
    if fresh:
        # the registry first (unique per period: of two approvers at once, one wins), then the files
        try:
            reg.approve(period, b["batch_id"], approved_by=who, manifest_sha256=manifest_sha, approval_sha256="")
        except IntegrityError:
            fresh = False
        recorded = reg.approval(period)
    doc = _document(b, manifest_sha, recorded["approved_by"], recorded["approved_at"], transfers)
    data = (json.dumps(doc, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
    if not recorded["approval_sha256"]:      # a new approval, or one that stopped before its files
        reg.set_approval_sha256(period, sha256_bytes(data))
    elif recorded["approval_sha256"] != sha256_bytes(data):
        if (folder / APPROVAL).is_file():
            return folder, recorded, False    # approved before: its files are verify's to judge
        raise O2PError(f"period {period}: approved by {recorded['approved_by']} at {recorded['approved_at']}, "
                       f"but {APPROVAL} is missing and cannot be written again as it was (the config or "
                       "payout.csv changed since)")
    if not (folder / APPROVAL).is_file():
        write_bytes_atomic(folder / TRANSFERS, transfers)
        write_bytes_atomic(folder / APPROVAL, data)    # last: its presence means the approval's files are complete
    return folder, recorded, fresh


def _document(batch: dict, manifest_sha: str, approved_by: str, approved_at: str | None, transfers: bytes) -> dict:
    return {"batch_id": batch["batch_id"], "period": batch["period"], "manifest_sha256": manifest_sha,
            "released_by": batch["released_by"], "approved_by": approved_by, "approved_at": approved_at,
            "files": {TRANSFERS: sha256_bytes(transfers)}}
