"""The files of a release (rulebook §8), written to a staging folder, checked, then published
by an atomic rename; and `verify`, which recomputes every hash and total."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import time
from decimal import Decimal
from pathlib import Path

from o2p import __version__
from o2p.config import Config
from o2p.money import fen_to_cny
from o2p.reference import Promoter
from o2p.settlement import Settlement

PAYOUT_COLUMNS = ["batch_id", "period", "promoter_id", "payee_name", "payee_openid", "gross_cny", "tax_cny", "net_cny"]
STATEMENT_COLUMNS = [
    "batch_id", "period", "promoter_id", "order_id", "line_id", "role", "click_event_id", "attribution_reason",
    "rate", "net_cny", "entitled_cny", "previously_booked_cny", "movement_cny", "note",
]
CARRIED_COLUMNS = ["batch_id", "period", "promoter_id", "carried_in_cny", "returned_cny", "movement_cny",
                   "balance_cny", "reason"]
TRANSFERS = "wechat_transfer.json"    # the transfer-bills request bodies (rulebook §8)
# Columns that hold numbers (never neutralised: "-30.00" is an amount, not a formula)
NUMERIC_COLUMNS = {"gross_cny", "tax_cny", "net_cny", "rate", "entitled_cny", "previously_booked_cny",
                   "movement_cny", "carried_in_cny", "returned_cny", "balance_cny"}
# A text cell starting with one of these is run as a formula by spreadsheets (OWASP CSV injection)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def code_version() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"o2p {__version__}" + (f" ({sha})" if sha else "")


def rate_text(rate_e4: int) -> str:
    return f"{Decimal(rate_e4) / 10000:.4f}"


def out_bill_no(batch_id: str, promoter_id: str) -> str:
    """Deterministic per batch and promoter (≤ 32 alphanumerics), so a retry never pays twice."""
    return "O2P" + hashlib.sha256(f"{batch_id}/{promoter_id}".encode()).hexdigest()[:29].upper()


def neutralise(text: str) -> str:
    """A text cell for people: a leading `'` when a spreadsheet would run it as a formula
    (rulebook §8); JSON files keep the raw text."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def restore(text: str) -> str:
    """The raw text of a neutralised cell (for tools that read the CSVs back)."""
    return text[1:] if text.startswith("'") and text[1:].startswith(FORMULA_STARTS) else text


def read_people_csv(path: Path) -> list[dict]:
    """Rows of a release CSV, text restored and amounts as integer fen (`<name>_fen` keys), in
    either format: rulebook v2 (BOM, CNY, neutralised text) or v1 batches (fen)."""
    from o2p.money import cny_to_fen

    out = []
    for r in csv.DictReader(io.StringIO(path.read_bytes().decode("utf-8-sig"))):
        row = {}
        for k, v in r.items():
            if k.endswith("_cny"):
                row[k[:-4] + "_fen"] = cny_to_fen(v) if v != "" else None
            elif k.endswith("_fen") and v not in (None, ""):
                row[k] = int(v)
            else:
                row[k] = restore(v) if isinstance(v, str) and k not in NUMERIC_COLUMNS else v
        out.append(row)
    return out


def _csv(rows: list[list], columns: list[str]) -> bytes:
    """Every CSV for people: UTF-8 with a BOM (Excel), text cells neutralised (rulebook §8)."""
    text_cols = [i for i, c in enumerate(columns) if c not in NUMERIC_COLUMNS]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    # Python's csv quotes a field holding "\n" but not one holding a lone "\r", which readers
    # then take for a line end: such a row is written fully quoted
    quoted = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_ALL)
    w.writerow(columns)
    for row in rows:
        row = list(row)
        for i in text_cols:
            if isinstance(row[i], str):
                row[i] = neutralise(row[i])
        (quoted if any(isinstance(v, str) and "\r" in v for v in row) else w).writerow(row)
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def transfer_instructions(cfg: Config, batch_id: str, period: str,
                          payees: list[tuple[str, str, str, int]]) -> bytes:
    """wechat_transfer.json (rulebook §8): one transfer-bills request body per payee, from
    (promoter_id, payee_name, payee_openid, net_fen) sorted by promoter_id."""
    transfers = []
    for promoter_id, payee_name, payee_openid, net_fen in payees:
        body = {
            "appid": cfg.payout.wechat_appid,
            "out_bill_no": out_bill_no(batch_id, promoter_id),
            "transfer_scene_id": cfg.payout.wechat_transfer_scene_id,
            "openid": payee_openid,
            "transfer_amount": net_fen,
            "transfer_remark": cfg.payout.wechat_transfer_remark,
            "transfer_scene_report_infos": [
                {"info_type": "岗位类型", "info_content": cfg.payout.wechat_post_type},
                {"info_type": "报酬说明", "info_content": f"{cfg.payout.wechat_reward_desc} {period}"},
            ],
        }
        if net_fen >= cfg.payout.wechat_user_name_min_fen:
            body["user_name"] = payee_name   # encrypted by the payment service before sending
        transfers.append(body)
    return (json.dumps(transfers, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def render(cfg: Config, batch_id: str, s: Settlement, promoters: dict[str, Promoter]) -> dict[str, bytes]:
    """The files written at release. Under `payout.require_approval` the transfer instructions
    are not among them: `o2p payouts approve` writes them after a second person approved."""
    paid = sorted(s.paid, key=lambda b: b.promoter_id)
    payout_rows = []
    for b in paid:
        p = promoters[b.promoter_id]
        payout_rows.append([batch_id, s.period, b.promoter_id, p.payee_name, p.payee_openid,
                            fen_to_cny(b.gross_fen), fen_to_cny(b.tax_fen), fen_to_cny(b.net_fen)])
    statement = [[batch_id, s.period, r.promoter_id, r.order_id, r.line_id, r.role, r.click_event_id or "",
                  r.attribution_reason or "", rate_text(r.rate_e4), fen_to_cny(r.net_fen), fen_to_cny(r.entitled_fen),
                  fen_to_cny(r.previously_booked_fen), fen_to_cny(r.movement_fen), ""]
                 for r in sorted(s.statement, key=lambda r: (r.promoter_id, r.order_id, r.line_id, r.role))]
    # a returned transfer applied in this period: its own line (rulebook §8, §10); its gross is
    # in movement_cny, the money that came back to the balance (booked and movement unchanged)
    statement += [[batch_id, s.period, r.promoter_id, "", "", "transfer_returned", "", "", "", "", "", "",
                   fen_to_cny(r.gross_fen),
                   f"transfer of {r.period} returned ({r.state}): batch {r.batch_id}, out_bill_no {r.out_bill_no}"]
                  for r in sorted(s.returns, key=lambda r: (r.promoter_id, r.period, r.out_bill_no))]
    statement.sort(key=lambda row: (row[2], row[5] == "transfer_returned"))
    carried = [[batch_id, s.period, b.promoter_id, fen_to_cny(b.carried_in_fen), fen_to_cny(b.returned_fen),
                fen_to_cny(b.movement_fen), fen_to_cny(b.balance_fen), b.carry_reason]
               for b in s.balances if b.carried_out_fen != 0]
    files = {
        "payout.csv": _csv(payout_rows, PAYOUT_COLUMNS),
        "statement.csv": _csv(statement, STATEMENT_COLUMNS),
        "carried.csv": _csv(carried, CARRIED_COLUMNS),
    }
    if not cfg.payout.require_approval:
        files[TRANSFERS] = transfer_instructions(
            cfg, batch_id, s.period,
            [(b.promoter_id, promoters[b.promoter_id].payee_name, promoters[b.promoter_id].payee_openid, b.net_fen)
             for b in paid])
    from o2p.workbook import payout_workbook

    # A workbook is for people: openpyxl takes ~25 s for 100k statement lines (a mid-size
    # month's 400k took 110 s of its release) and a sheet holds 1,048,575 rows at most, so past
    # payout.workbook_statement_rows the statement sheet names statement.csv instead (README).
    limit = cfg.payout.workbook_statement_rows
    in_workbook = statement if len(statement) <= limit else (
        f"This batch's statement has {len(statement)} lines, more than a workbook holds here "
        f"(payout.workbook_statement_rows = {limit}): every line is in statement.csv, in this folder.")
    files["payout.xlsx"] = payout_workbook(batch_id, s.period, [
        ("payout", PAYOUT_COLUMNS, payout_rows),
        ("statement", STATEMENT_COLUMNS, in_workbook),
        ("carried", CARRIED_COLUMNS, carried),
    ], totals(s), NUMERIC_COLUMNS, [
        ("statement_lines", len(statement)),
        ("statement_sheet", "every line" if in_workbook is statement else "statement.csv only (see the sheet)"),
    ])
    return files


def bills(batch_id: str, s: Settlement, promoters: dict[str, Promoter]) -> list[dict]:
    """The transfer bills of a release, for the registry (what reconcile checks results against)."""
    return [{"out_bill_no": out_bill_no(batch_id, b.promoter_id), "batch_id": batch_id, "promoter_id": b.promoter_id,
             "openid": promoters[b.promoter_id].payee_openid, "payee_name": promoters[b.promoter_id].payee_name,
             "gross_fen": b.gross_fen, "tax_fen": b.tax_fen,
             "net_fen": b.net_fen} for b in sorted(s.paid, key=lambda b: b.promoter_id)]


def totals(s: Settlement) -> dict:
    paid = s.paid
    return {"row_count": len(paid), "gross_fen": sum(b.gross_fen for b in paid),
            "tax_fen": sum(b.tax_fen for b in paid), "net_fen": sum(b.net_fen for b in paid)}


def manifest(cfg: Config, batch_id: str, period: str, files: dict[str, bytes], tot: dict,
             input_fingerprint: str, gates: list[dict]) -> bytes:
    doc = {
        "batch_id": batch_id,
        "period": period,
        "row_count": tot["row_count"],
        "totals_fen": {"gross": tot["gross_fen"], "tax": tot["tax_fen"], "net": tot["net_fen"]},
        "currency": "CNY",
        "files": {name: sha256_bytes(data) for name, data in sorted(files.items())},
        "config_hash": cfg.config_hash,
        "tax_rule": cfg.tax,
        "attribution_model": cfg.attribution.model,
        "input_fingerprint": input_fingerprint,
        "code_version": code_version(),
        "quality_gates": gates,
    }
    if cfg.payout.require_approval:   # the transfer instructions come with the approval (rulebook §10)
        doc["approval_required"] = True
    return (json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=False) + "\n").encode("utf-8")


def write_folder(folder: Path, files: dict[str, bytes]) -> None:
    """Write into folder.partial, fsync, then rename: a reader never sees half a batch.

    Called only by the holder of the period's claim. A folder already there was left by a
    release that died before the registry recorded it (so it was never released): it is kept
    beside, renamed `.abandoned-<time>`, for whoever investigates."""
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    if folder.exists():
        os.replace(folder, folder.with_name(f"{folder.name}.abandoned-{time.strftime('%Y%m%dT%H%M%S')}"))
    staging.mkdir(parents=True)
    for name, data in files.items():
        with open(staging / name, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(staging, folder)


def _shown(name: str) -> str:
    """A file name as it may be printed on one line (quoted when it holds a newline, a control
    character or bytes that are not UTF-8)."""
    return name if name.isprintable() else repr(name)


def _kind(st: os.stat_result) -> str:
    if stat.S_ISLNK(st.st_mode):
        return "symbolic link"
    if stat.S_ISDIR(st.st_mode):
        return "folder"
    if stat.S_ISREG(st.st_mode):
        return "file"
    return "special file"


def _plain_name(name: object) -> bool:
    return (isinstance(name, str) and name not in ("", ".", "..", "manifest.json")
            and "/" not in name and "\\" not in name and "\0" not in name)


def verify(folder: Path, registry=None) -> list[str]:
    """Recompute hashes and totals against the manifest (and the registry); return the problems.

    A released folder holds exactly what `write_folder` wrote: the files the manifest lists and
    manifest.json, each a regular file. Anything else in it (an extra or hidden file, a
    subfolder, a symbolic link, even one to a file with the same bytes) is a problem."""
    problems: list[str] = []
    mpath = folder / "manifest.json"
    if mpath.is_symlink():
        return [f"{mpath}: a symbolic link, not the released manifest"]
    if not mpath.is_file():
        return [f"{mpath}: missing"]
    try:
        man = json.loads(mpath.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return [f"{mpath}: not valid UTF-8 JSON ({exc})"]
    if not isinstance(man, dict):
        return [f"{mpath}: not a manifest (a JSON object)"]
    listed = man.get("files", {})
    if not isinstance(listed, dict):
        return [f"{mpath}: \"files\" is not an object of file names and SHA-256 hashes"]
    for name, want in listed.items():
        if not _plain_name(name):
            problems.append(f"manifest.json: lists {name!r}, not the name of a file in the batch folder")
            continue
        p = folder / name
        try:
            st = p.lstat()
        except FileNotFoundError:
            problems.append(f"{_shown(name)}: missing")
            continue
        if not stat.S_ISREG(st.st_mode):
            problems.append(f"{_shown(name)}: a {_kind(st)}, not the released file (a released batch holds "
                            "regular files only)")
        elif sha256_file(p) != want:
            problems.append(f"{_shown(name)}: SHA-256 differs from the manifest")
    approval_files = _check_approval(folder, man, mpath, registry, problems)
    expected = {n for n in listed if _plain_name(n)} | {"manifest.json"} | approval_files
    with os.scandir(folder) as entries:
        extra = sorted(((e.name, e.stat(follow_symlinks=False)) for e in entries if e.name not in expected),
                       key=lambda t: t[0])
    for name, st in extra:
        problems.append(f"unexpected {_kind(st)} {_shown(name)} in {folder}: a released batch holds exactly "
                        "the files its manifest lists")
    payout = folder / "payout.csv"
    if payout.is_file() and not payout.is_symlink():
        try:
            rows = list(csv.DictReader(io.StringIO(payout.read_bytes().decode("utf-8-sig"))))
            _check_payout_rows(rows, man, problems)
            _check_transfers(folder, man, read_people_csv(payout), registry, problems)
        except (UnicodeDecodeError, KeyError, ArithmeticError, ValueError) as exc:
            problems.append(f"payout.csv: unreadable ({type(exc).__name__}: {exc})")
    if registry is not None:
        b = registry.batch(man.get("period", ""))
        if b is None or b["status"] != "released":
            problems.append(f"registry: period {man.get('period')} is not recorded as released")
        else:
            if b["batch_id"] != man.get("batch_id"):
                problems.append(f"registry: batch id {b['batch_id']} ≠ manifest {man.get('batch_id')}")
            if b["manifest_sha256"] != sha256_file(mpath):
                problems.append("manifest.json: SHA-256 differs from the registry")
            for name, h in registry.files(man.get("period", "")).items():
                if man.get("files", {}).get(name) != h:
                    problems.append(f"{name}: registry hash differs from the manifest")
    return problems


APPROVAL = "approval.json"


def _check_approval(folder: Path, man: dict, mpath: Path, registry, problems: list[str]) -> set[str]:
    """The approval record and the files it adds (rulebook §10): approval.json names the
    manifest it approved and hashes what it wrote; the registry holds approval.json's hash.
    Returns the names an approval adds to the folder."""
    path = folder / APPROVAL
    recorded = registry.approval(man.get("period", "")) if registry is not None else None
    if not path.exists() and not path.is_symlink():
        if recorded:
            problems.append(f"{APPROVAL}: missing (approved by {recorded['approved_by']} at {recorded['approved_at']})")
        return set()
    if path.is_symlink() or not path.is_file():
        problems.append(f"{APPROVAL}: not a regular file")
        return {APPROVAL}
    if not man.get("approval_required"):
        problems.append(f"{APPROVAL}: present, but the batch was released without approval")
    try:
        doc = json.loads(path.read_bytes().decode("utf-8"))
        files = dict(doc["files"])
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        problems.append(f"{APPROVAL}: unreadable ({type(exc).__name__}: {exc})")
        return {APPROVAL}
    if doc.get("manifest_sha256") != sha256_file(mpath):
        problems.append(f"{APPROVAL}: approves another manifest (its SHA-256 differs from manifest.json)")
    if doc.get("batch_id") != man.get("batch_id"):
        problems.append(f"{APPROVAL}: names batch {doc.get('batch_id')}, the manifest {man.get('batch_id')}")
    names = set()
    for name, want in files.items():
        if not _plain_name(name) or name in man.get("files", {}) or name in ("manifest.json", APPROVAL):
            problems.append(f"{APPROVAL}: lists {name!r}, not a file an approval adds")
            continue
        names.add(name)
        p = folder / name
        if p.is_symlink() or not p.is_file():
            problems.append(f"{_shown(name)}: missing or not a regular file (written at approval)")
        elif sha256_file(p) != want:
            problems.append(f"{_shown(name)}: SHA-256 differs from {APPROVAL}")
    if registry is not None:
        if recorded is None:
            problems.append(f"{APPROVAL}: the registry records no approval of period {man.get('period')}")
        elif recorded["approval_sha256"] != sha256_file(path):
            problems.append(f"{APPROVAL}: SHA-256 differs from the registry's approval record")
    return names | {APPROVAL}


def _check_transfers(folder: Path, man: dict, payees: list[dict], registry, problems: list[str]) -> None:
    """The transfer instructions pay exactly payout.csv (rulebook §8): one bill per paid promoter,
    its out_bill_no derived from the batch, to the payee's openid, the net amount; and, given the
    registry, exactly the transfer bills it recorded at release (what reconcile will match)."""
    path = folder / TRANSFERS
    if path.is_symlink() or not path.is_file():
        return      # missing when it should not be: the manifest or approval check says so
    try:
        transfers = json.loads(path.read_bytes().decode("utf-8"))
        got = {t["out_bill_no"]: (t["openid"], t["transfer_amount"]) for t in transfers}
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        problems.append(f"{TRANSFERS}: unreadable ({type(exc).__name__}: {exc})")
        return
    if len(got) != len(transfers):
        problems.append(f"{TRANSFERS}: {len(transfers)} transfers but {len(got)} distinct out_bill_no")
    want = {out_bill_no(man.get("batch_id", ""), r["promoter_id"]): (r["promoter_id"], r["payee_openid"], r["net_fen"])
            for r in payees}
    for no in sorted(got.keys() - want.keys()):
        problems.append(f"{TRANSFERS}: bill {no} pays {got[no][1]} fen to {got[no][0]}, no row of payout.csv")
    for no, (pid, openid, net) in sorted(want.items(), key=lambda kv: kv[1][0]):
        if no not in got:
            problems.append(f"{TRANSFERS}: no transfer for promoter {pid} ({net} fen in payout.csv)")
        elif got[no] != (openid, net):
            problems.append(f"{TRANSFERS}: bill {no} pays {got[no][1]} fen to {got[no][0]}, payout.csv says "
                            f"{net} fen to {openid} (promoter {pid})")
    if registry is not None:
        bills = registry.bills(period=man.get("period", ""))
        for no in sorted(bills.keys() ^ got.keys()):
            where = "the registry's bills" if no in bills else TRANSFERS
            problems.append(f"{TRANSFERS}: bill {no} is only in {where}")
        for no in sorted(bills.keys() & got.keys()):
            b = bills[no]
            if b["net_fen"] != got[no][1] or (b["openid"] is not None and b["openid"] != got[no][0]):
                problems.append(f"{TRANSFERS}: bill {no} pays {got[no][1]} fen to {got[no][0]}, the registry "
                                f"recorded {b['net_fen']} fen to {b['openid']}")


def _check_payout_rows(rows: list[dict], man: dict, problems: list[str]) -> None:
    def fen(v: str) -> int:
        d = Decimal(v)
        if d != d.quantize(Decimal("0.01")):
            raise ValueError(f"{v!r} is not an amount with two places")
        return int(d * 100)

    sums = {k: sum(fen(r[f"{k}_cny"]) for r in rows) for k in ("gross", "tax", "net")}
    if len(rows) != man.get("row_count"):
        problems.append(f"payout.csv: {len(rows)} rows, manifest says {man.get('row_count')}")
    for k, v in sums.items():
        if v != man.get("totals_fen", {}).get(k):
            problems.append(f"payout.csv: {k} sums to {v} fen, manifest says {man.get('totals_fen', {}).get(k)}")
    for r in rows:
        if fen(r["gross_cny"]) - fen(r["tax_cny"]) != fen(r["net_cny"]):
            problems.append(f"payout.csv: promoter {r['promoter_id']}: net ≠ gross − tax")
