"""Release a period as the payout asset does (pipelines/assets/payouts/assets.py), without
Kafka, Spark or Dagster: settle against the registry (booked, carried, prior payouts, returned
transfers), render, write the folder, record it. For tests of what comes after a release."""

from __future__ import annotations

from pathlib import Path

from o2p import release
from o2p.registry import Registry
from o2p.settlement import Returned, ledger_entries, settle
from o2p.timeutil import period_end_us, previous_period


def entitlement(promoter_id: str, order_id: str, entitled_fen: int, line_id: str = "L1") -> dict:
    return {"promoter_id": promoter_id, "order_id": order_id, "line_id": line_id, "role": "direct",
            "entitled_fen": entitled_fen, "net_fen": entitled_fen * 10, "rate_e4": 1000, "click_event_id": "c",
            "attribution_reason": "last_click"}


def release_period(cfg, period: str, entitlements: list[dict], promoters: dict, *, released_by: str = "li",
                   threshold_fen: int = 1000, tax_rule: str = "none") -> tuple[Path, object]:
    """(batch folder, Settlement). `entitlements`: entitled(p, l, P) as of end(P), cumulative."""
    reg = Registry(cfg.registry)
    returns = [Returned(b["promoter_id"], b["period"], b["batch_id"], b["out_bill_no"], b["state"], b["gross_fen"])
               for b in reg.returns_to_apply()]
    s = settle(period, period_end_us(period), entitlements, reg.booked_before(period),
               reg.carried_into(previous_period(period)), promoters, reg.prior_payouts(period),
               threshold_fen=threshold_fen, tax_rule=tax_rule, returns=returns)
    batch_id = f"{period}-t"
    files = release.render(cfg, batch_id, s, promoters)
    tot = release.totals(s)
    files["manifest.json"] = release.manifest(cfg, batch_id, period, files, tot, "fp", [])
    folder = cfg.payouts_path / period / batch_id
    reg.claim(period, batch_id, released_by=released_by)
    release.write_folder(folder, files)
    reg.complete(period, folder=str(folder), totals=tot,
                 files={n: release.sha256_bytes(d) for n, d in files.items() if n != "manifest.json"},
                 manifest_sha256=release.sha256_bytes(files["manifest.json"]), config_hash=cfg.config_hash,
                 input_fingerprint="fp",
                 entries=ledger_entries(s.statement),
                 balance_rows=[dict(vars(b)) for b in s.balances],
                 bills=release.bills(batch_id, s, promoters), applied_returns=[r.out_bill_no for r in s.returns])
    return folder, s
