"""Settlement of a period (rulebook §6-§7): movement against earlier releases, balances, tax.

Periods are released in order; computing P needs P−1 released (the first period is the month
of the earliest captured event). The result is kept in DuckDB (settlement.promoter_balances,
settlement.statement_lines) for the release and for BI; the GX settlement gate checks it.
"""


from dagster import (
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    Output,
    asset,
)

from expectations import suites
from expectations.runner import run_suite
from o2p import layout, ledger_mirror
from o2p.config import Config
from o2p.errors import GateBroken, GateFailed, InputError, O2PError
from o2p.gates import Gate
from o2p.periods import check_order, first_period  # noqa: F401 - first_period: the settlement's API
from o2p.reference import load_reference
from o2p.registry import Registry
from o2p.settlement import STATEMENT_FIELDS, Returned, Settlement, balances, returned_by_promoter
from o2p.timeutil import period_end_us, previous_period
from pipelines.assets.commission.assets import ENTITLEMENTS
from pipelines.lib import builds, gates, quality
from pipelines.lib.duck import POOL, connect, replace_period
from pipelines.lib.partitions import monthly
from pipelines.lib.versions import DATA_PLATFORM, FINANCE, code_version
from pipelines.resources import O2PConfig, RegistryResource

SETTLEMENT = AssetKey(["settlement", "promoter_balances"])


def compute(cfg: Config, registry: Registry, period: str, log=None) -> Settlement:
    """Movement in DuckDB against the mirrored ledger (o2p.ledger_mirror), balances and tax in
    Python over the lines that moved."""
    ref = load_reference(cfg.reference_path, encoding=cfg.reference_encoding)
    with connect(cfg) as con:
        synced = ledger_mirror.sync(con, registry, period)
        statement = ledger_mirror.movements(con, period)
    if log and (synced["reloaded"] or synced["dropped"]):
        log(f"ledger mirror: reloaded {synced['reloaded'] or 'nothing'} from the registry, "
            f"dropped {synced['dropped'] or 'nothing'}")
    # transfers of earlier batches returned since the last release (rulebook §10): applied here
    returns = [Returned(b["promoter_id"], b["period"], b["batch_id"], b["out_bill_no"], b["state"], b["gross_fen"])
               for b in registry.returns_to_apply()]
    return Settlement(period, statement, balances(
        period, period_end_us(period), statement,
        carried_in=registry.carried_into(previous_period(period)),
        promoters=ref.promoters,
        prior_payouts=registry.prior_payouts(period),
        threshold_fen=cfg.settlement.payout_threshold_fen,
        tax_rule=cfg.tax,
        returned=returned_by_promoter(returns),
    ), returns)


def balances_frame(s: Settlement):
    import pandas as pd

    cols = ["promoter_id", "carried_in_fen", "movement_fen", "balance_fen", "gross_fen",
            "tax_fen", "net_fen", "carried_out_fen", "carry_reason", "returned_fen"]
    df = pd.DataFrame([vars(b) for b in s.balances], columns=cols)
    df.insert(0, "period", s.period)
    for c in cols[1:]:
        if c != "carry_reason":
            df[c] = df[c].astype("int64")
    df["carry_reason"] = df["carry_reason"].astype("string")
    return df


def returns_frame(s: Settlement):
    import pandas as pd

    df = pd.DataFrame([{"period": s.period, "promoter_id": r.promoter_id, "from_period": r.period,
                        "batch_id": r.batch_id, "out_bill_no": r.out_bill_no, "state": r.state,
                        "gross_fen": r.gross_fen} for r in s.returns],
                      columns=["period", "promoter_id", "from_period", "batch_id", "out_bill_no", "state", "gross_fen"])
    df["gross_fen"] = df["gross_fen"].astype("int64")
    for c in ("period", "promoter_id", "from_period", "batch_id", "out_bill_no", "state"):
        df[c] = df[c].astype("string")
    return df


def statement_frame(s: Settlement):
    import pandas as pd

    cols = list(STATEMENT_FIELDS)
    df = pd.DataFrame([vars(r) for r in s.statement], columns=cols)
    df.insert(0, "period", s.period)
    for c in cols[6:]:
        df[c] = df[c].astype("int64")
    for c in cols[:6]:
        df[c] = df[c].astype("string")
    return df


def _commission_of_this_run(context: AssetExecutionContext, cfg: Config, period: str) -> str | None:
    """A release that did not build the commission models (`o2p payouts release` right after the
    run that built them, pipelines/lib/builds.py) takes that build's commission gate as its own,
    after checking again, now, that nothing it was built from has changed and that the tables
    hold the rows it built. Returns the run id it came from; None when this run built them."""
    if Gate.COMMISSION in quality.results(cfg, period, context.run_id):
        return None
    from pipelines.assets.commission.assets import dbt_vars

    reuse, why = builds.current(cfg, period, dbt_vars(cfg, period))
    if reuse is None:
        raise O2PError(f"period {period}: this run did not build the commission models, and no build of them "
                       f"can be reused: {why}. Release again: a release then builds them itself")
    quality.adopt(cfg, period, context.run_id, reuse.commission, from_run=reuse.run_id)
    context.log.info(f"commission of {period}: the tables run {reuse.run_id} built and gated on the same inputs "
                     f"(BI marts: run {reuse.bi_run_id})")
    return reuse.run_id


@asset(
    key=SETTLEMENT,
    deps=[ENTITLEMENTS],
    partitions_def=monthly,
    pool=POOL,
    group_name="settlement",
    kinds={"python", "duckdb"},
    owners=[FINANCE, DATA_PLATFORM],
    tags={"domain": "money", "cadence": "monthly"},
    code_version=code_version("o2p/settlement.py", "o2p/tax.py", "o2p/ledger_mirror.py", "o2p/money.py"),
    check_specs=[AssetCheckSpec(Gate.SETTLEMENT.check, asset=SETTLEMENT, blocking=True,
                                description="carried in + movement = paid + carried out; net = gross − tax")],
    description="Per promoter: carried in, movement, balance, gross paid, tax, net, carried out (and why).",
)
def promoter_balances(context: AssetExecutionContext, o2p: O2PConfig, registry: RegistryResource):
    cfg = o2p.get()
    period = context.partition_key[:7]
    registry = registry.get(cfg)
    existing = registry.batch(period)
    if existing and existing["status"] == "released":
        raise InputError(f"period {period} is already released (batch {existing['batch_id']}); released periods are never recomputed")
    check_order(cfg, registry, period)
    reused = _commission_of_this_run(context, cfg, period)
    # write-audit-publish: every upstream stage of every day this period pays from has passed
    # its gate on exactly the files that are there now (re-validated where they changed)
    upstream = gates.for_release(cfg, period)
    for result in upstream.values():
        quality.record(cfg, period, context.run_id, result)
    failed = [r for r in upstream.values() if not r.success]
    if failed and all(r.broken for r in failed):   # could not run: an internal error, not the data
        raise GateBroken(f"period {period}: nothing released, quality gate(s) could not run "
                         "(an internal error, not a finding about the data):\n"
                         + "\n".join(r.describe() for r in failed))
    if failed:
        raise GateFailed(f"period {period}: nothing released, upstream quality gate(s) failed:\n"
                         + "\n".join(r.describe() for r in failed))
    s = compute(cfg, registry, period, log=context.log.info)
    bal = balances_frame(s)
    stm = statement_frame(s)
    with connect(cfg) as con:
        replace_period(con, layout.PROMOTER_BALANCES, period, bal)
        replace_period(con, layout.STATEMENT_LINES, period, stm)
        replace_period(con, layout.RETURNED_TRANSFERS, period, returns_frame(s))
    check_df = bal.assign(
        reconciles=(bal.carried_in_fen + bal.returned_fen + bal.movement_fen == bal.gross_fen + bal.carried_out_fen),
        net_is_gross_minus_tax=(bal.net_fen == bal.gross_fen - bal.tax_fen),
    )
    result = run_suite(Gate.SETTLEMENT, check_df, suites.settlement, home=cfg.home_path, id_columns=["promoter_id"])
    quality.record(cfg, period, context.run_id, result)
    paid = bal[bal.gross_fen > 0]
    yield Output(None, metadata={
        **({"commission_built_by_run": reused} if reused else {}),
        "period": period, "promoters": len(bal), "paid": len(paid),
        "gross_fen": int(paid.gross_fen.sum()), "tax_fen": int(paid.tax_fen.sum()),
        "net_fen": int(paid.net_fen.sum()), "carried_out_fen": int(bal.carried_out_fen.sum()),
        "statement_lines": len(stm),
        "returned_transfers": len(s.returns), "returned_fen": sum(r.gross_fen for r in s.returns),
    })
    yield quality.to_check(result, check_name=Gate.SETTLEMENT.check)
