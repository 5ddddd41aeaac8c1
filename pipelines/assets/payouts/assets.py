"""The payout release of a period (rulebook §8): write-audit-publish.

Files are rendered in memory, the payout gate runs on them, every gate of this run must have
passed (commission, settlement, payout; the commission gate is the reused build's when the run
did not build: pipelines/lib/builds.py), the period is claimed in the registry (a unique key:
two releases cannot both win), the folder is written atomically, and the registry records the
hashes, every booked amount and the balances. Releasing a released period returns it as it is.
"""


import hashlib

from dagster import (
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    MetadataValue,
    Output,
    asset,
)

from expectations import suites
from expectations.runner import is_broken, run_suite
from o2p import bi, layout, monthly_report, release
from o2p.config import Config
from o2p.errors import GateBroken, GateFailed
from o2p.gates import RELEASE, Gate
from o2p.layout import TABLES
from o2p.reference import load_reference
from o2p.registry import Registry
from o2p.settlement import Balance, Returned, Settlement, StatementRow, ledger_entries
from o2p.timeutil import period_end_us
from pipelines.assets.settlement.assets import SETTLEMENT
from pipelines.lib import quality
from pipelines.lib.duck import POOL, connect
from pipelines.lib.partitions import monthly
from pipelines.lib.versions import DATA_PLATFORM, FINANCE, code_version
from pipelines.resources import O2PConfig, RegistryResource

PAYOUT = AssetKey(["payouts", "payout_batch"])


def input_fingerprint(cfg: Config) -> str:
    """SHA-256 over every landed file name (topic, partition, offsets) and the reference CSVs."""
    h = hashlib.sha256()
    for table in TABLES:
        for f in sorted((cfg.landing_path / table).glob("event_date=*/*.parquet")):
            h.update(f"{table}/{f.parent.name}/{f.name}\n".encode())
    for name in ("promoters.csv", "products.csv", "commission_rules.csv"):
        h.update(name.encode() + release.sha256_file(cfg.reference_path / name).encode())
    return h.hexdigest()


def load_settlement(cfg: Config, period: str) -> Settlement:
    with connect(cfg, read_only=True) as con:
        bal = con.execute(f"select * from {layout.PROMOTER_BALANCES} where period = ? order by promoter_id", [period]).fetchall()
        bcols = [d[0] for d in con.description]
        stm = con.execute(f"select * from {layout.STATEMENT_LINES} where period = ?", [period]).fetchall()
        scols = [d[0] for d in con.description]
        has_returns = con.execute("select count(*) from information_schema.tables where table_schema = 'settlement' "
                                  "and table_name = 'returned_transfers'").fetchone()[0]
        ret = con.execute("select promoter_id, from_period, batch_id, out_bill_no, state, gross_fen from "
                          f"{layout.RETURNED_TRANSFERS} where period = ? order by promoter_id, from_period, "
                          "out_bill_no", [period]).fetchall() if has_returns else []
    s = Settlement(period)
    for r in bal:
        d = dict(zip(bcols, r, strict=True))
        d.pop("period")
        s.balances.append(Balance(**d))
    for r in stm:
        d = dict(zip(scols, r, strict=True))
        d.pop("period")
        s.statement.append(StatementRow(**d))
    s.returns = [Returned(*r) for r in ret]
    return s


def payout_frame(s: Settlement, promoters, end_us: int):
    import pandas as pd

    rows = []
    for b in s.paid:
        p = promoters.get(b.promoter_id)
        rows.append({
            "promoter_id": b.promoter_id, "gross_fen": b.gross_fen, "tax_fen": b.tax_fen, "net_fen": b.net_fen,
            "payee_openid": p.payee_openid if p else None,
            "net_is_gross_minus_tax": b.net_fen == b.gross_fen - b.tax_fen,
            "suspended_before_end": bool(p and p.suspended_at_us is not None and p.suspended_at_us < end_us),
        })
    cols = ["promoter_id", "gross_fen", "tax_fen", "net_fen", "payee_openid", "net_is_gross_minus_tax", "suspended_before_end"]
    return pd.DataFrame(rows, columns=cols)


def _report(context: AssetExecutionContext, cfg, period: str) -> str | None:
    """The period's page for people (`o2p report`), from the warehouse this run holds (no other
    writer runs beside it); written after the registry, so it never delays or fails money. The
    warehouse's mirror of the releases is brought in step first (this release included), as the
    BI refresh does, so estimated vs settled counts what was just released."""
    try:
        with connect(cfg) as con:
            bi.sync_releases(con, Registry(cfg.registry))
        return str(monthly_report.write(cfg, period, db=cfg.duckdb_path))
    except Exception as exc:  # noqa: BLE001 - the report never fails a release
        context.log.warning(f"the report of {period} was not written: {type(exc).__name__}: {exc}")
        return None


@asset(
    key=PAYOUT,
    deps=[SETTLEMENT],
    partitions_def=monthly,
    pool=POOL,
    group_name="payouts",
    kinds={"python", "csv"},
    owners=[FINANCE, DATA_PLATFORM],
    tags={"domain": "money", "cadence": "monthly"},
    code_version=code_version("o2p/release.py", "o2p/money.py"),
    check_specs=[AssetCheckSpec(Gate.PAYOUT.check, asset=PAYOUT, blocking=True,
                                description="one row per promoter, gross ≥ threshold, payee present, net = gross − tax, nobody suspended")],
    description="payouts/PERIOD/BATCH_ID/: payout.csv, statement.csv, carried.csv, wechat_transfer.json, manifest.json.",
)
def payout_batch(context: AssetExecutionContext, o2p: O2PConfig, registry: RegistryResource):
    cfg = o2p.get()
    period = context.partition_key[:7]
    registry = registry.get(cfg)
    existing = registry.batch(period)
    if existing and existing["status"] == "released":
        context.log.info(f"period {period} already released as {existing['batch_id']}")
        yield Output(None, metadata={"batch_folder": existing["folder"], "batch_id": existing["batch_id"], "already_released": True})
        return
    ref = load_reference(cfg.reference_path, encoding=cfg.reference_encoding)
    s = load_settlement(cfg, period)
    fingerprint = input_fingerprint(cfg)
    batch_id = f"{period}-{hashlib.sha256((cfg.config_hash + fingerprint).encode()).hexdigest()[:10]}"
    files = release.render(cfg, batch_id, s, ref.promoters)

    gate = run_suite(Gate.PAYOUT, payout_frame(s, ref.promoters, period_end_us(period)),
                     lambda E: suites.payout(E, cfg.settlement.payout_threshold_fen),
                     home=cfg.home_path, id_columns=["promoter_id"])
    quality.record(cfg, period, context.run_id, gate)
    gates = quality.results(cfg, period, context.run_id)
    failed = [n for n in RELEASE if not gates.get(n, {}).get("success")]
    if failed:
        yield quality.to_check(gate, check_name=Gate.PAYOUT.check)
        details = "; ".join(
            f"{n}: " + ("did not run in this run" if n not in gates else
                        ", ".join(f"{f['expectation']}({f.get('column')}) observed {f.get('observed')}"
                                  for f in gates[n]["failures"]) or gates[n].get("error") or "failed")
            for n in failed)
        if all(n in gates and is_broken(gates[n]) for n in failed):   # a gate that could not run is an internal error, not a finding about the data
            raise GateBroken(f"period {period}: nothing released, quality gate(s) could not run: {details}")
        raise GateFailed(f"period {period}: nothing released, quality gate(s) failed: {details}")

    tot = release.totals(s)
    gate_list = [{"suite": n, "success": g["success"], "expectations": g["expectations"], "rows": g["rows"]}
                 for n, g in sorted(gates.items())]
    files["manifest.json"] = release.manifest(cfg, batch_id, period, files, tot, fingerprint, gate_list)
    folder = layout.batch_folder(cfg.payouts_path, period, batch_id)
    # who released it (rulebook §10): the person the run names (`o2p --as`, $O2P_USER, the UI's
    # launcher when the instance knows it), else the automation that started it
    tags = context.run.tags
    released_by = tags.get("o2p/user") or tags.get("user") or (
        f"{tags['o2p/automation']} (o2p serve)" if "o2p/automation" in tags else f"Dagster run {context.run_id[:8]}")
    registry.claim(period, batch_id, released_by=released_by)
    try:
        release.write_folder(folder, files)
        registry.complete(
            period, folder=str(folder), totals=tot,
            files={n: release.sha256_bytes(d) for n, d in files.items() if n != "manifest.json"},
            manifest_sha256=release.sha256_bytes(files["manifest.json"]),
            config_hash=cfg.config_hash, input_fingerprint=fingerprint,
            entries=ledger_entries(s.statement),
            balance_rows=[dict(vars(b)) for b in s.balances],
            bills=release.bills(batch_id, s, ref.promoters),
            applied_returns=[r.out_bill_no for r in s.returns],
        )
    except BaseException:
        registry.abandon(period)
        raise
    page = _report(context, cfg, period)
    yield Output(None, metadata={
        **({"report": MetadataValue.path(page)} if page else {}),
        "batch_folder": MetadataValue.path(str(folder)), "batch_id": batch_id, "period": period,
        "rows": tot["row_count"], "gross_fen": tot["gross_fen"], "tax_fen": tot["tax_fen"], "net_fen": tot["net_fen"],
        "files": MetadataValue.json({n: release.sha256_bytes(d) for n, d in files.items()}),
        "config_hash": cfg.config_hash, "input_fingerprint": fingerprint,
    })
    yield quality.to_check(gate, check_name=Gate.PAYOUT.check)

