"""The BI copy of the marts (issue #14), published after every successful commission run and
release: an asset downstream of every mart and of the release, so it runs in the same run,
after them, and only when they and their blocking checks succeeded.

An asset rather than a run-status sensor: a sensor runs only under the daemon (`o2p serve`),
so `o2p run` and `o2p payouts release` in the CLI would never refresh the copy; an asset runs
wherever the run does, in the warehouse pool (it reads the pipeline's file, so no writer runs
beside it), and its materializations say in the UI when the copy was last published.

First it brings the warehouse's copies of the registry's releases in step (the release of this
run included: `o2p.bi.sync_releases`), so the estimated-vs-settled mart answers as of it. With
`bi.postgres_url` set it then writes the marts to PostgreSQL too, in one transaction.

It never fails a run: an error of the DuckDB copy is logged as a warning and the asset yields
nothing (no materialization: the copy was not refreshed, the previous one stays in place); an
error of the PostgreSQL copy is logged as a warning and shown in the materialization's metadata
(`postgres_error`), the DuckDB copy standing. The release's
files and registry are written before it starts, so it cannot delay money either; it only adds
its few seconds to the end of the run.
"""


import time

from dagster import AssetExecutionContext, AssetKey, MetadataValue, Output, asset

from o2p import bi, layout
from o2p.registry import Registry
from pipelines.assets.commission.assets import commission_dbt
from pipelines.assets.payouts.assets import PAYOUT
from pipelines.assets.settlement.assets import SETTLEMENT
from pipelines.lib.duck import POOL, connect
from pipelines.lib.partitions import monthly
from pipelines.lib.versions import DATA_PLATFORM, code_version
from pipelines.resources import O2PConfig

BI_COPY = AssetKey(["bi", "o2p_bi"])
MARTS = sorted((k for k in commission_dbt.keys if k.path[0] in layout.BI_SCHEMAS), key=lambda k: k.path)


def _upstream(keys: set[AssetKey]) -> set[AssetKey]:
    """These dbt models and every model of the project they read, transitively."""
    seen, todo = set(), list(keys)
    while todo:
        key = todo.pop()
        if key not in seen:
            seen.add(key)
            todo += [d for d in commission_dbt.asset_deps.get(key, ()) if d in commission_dbt.keys]
    return seen


# The marts money is computed from (settlement reads the entitlements, `o2p anomalies` the
# anomalies) and every model they read. The other models of the project are for BI only: they
# hold no period, so a plan of several months builds them once (pipelines/lib/plan.py, Step.bi).
MONEY_MARTS = {AssetKey(["marts", "fct_commission_entitlements"]), AssetKey(["marts", "fct_anomalies"])}
BI_MODELS = frozenset(commission_dbt.keys - _upstream(MONEY_MARTS))


@asset(
    key=BI_COPY,
    deps=[*MARTS, SETTLEMENT, PAYOUT],
    partitions_def=monthly,
    pool=POOL,
    group_name="bi",
    kinds={"duckdb"},
    owners=[DATA_PLATFORM],
    tags={"domain": "bi"},
    code_version=code_version("o2p/bi.py"),
    output_required=False,
    description="bi/o2p_bi.duckdb: every mart, copied whole and swapped in atomically after each successful "
                "commission run and release; the file BI tools hold open (never the pipeline's).",
)
def o2p_bi(context: AssetExecutionContext, o2p: O2PConfig):
    cfg = o2p.get()
    target = layout.bi_duckdb_file(cfg.home_path)
    started = time.monotonic()
    try:
        if not cfg.duckdb_path.exists():   # nothing to publish (and the refresh never creates a warehouse)
            raise FileNotFoundError(f"no warehouse at {cfg.duckdb_path} yet")
        with connect(cfg) as con:
            synced = bi.sync_releases(con, Registry(cfg.registry))
        counts = bi.publish_duckdb(cfg.duckdb_path, target)
    except Exception as exc:  # noqa: BLE001 - the BI copy never fails a run (issue #14)
        context.log.warning(f"the BI copy was not refreshed (the previous one stays): {type(exc).__name__}: {exc}")
        return
    seconds = round(time.monotonic() - started, 3)
    context.log.info(f"BI copy published in {seconds} s: {target}")
    metadata = {
        "path": MetadataValue.path(str(target)),
        "seconds": MetadataValue.float(seconds),
        "rows": MetadataValue.json(counts),
        "releases": MetadataValue.json(synced),
        "dagster/row_count": MetadataValue.int(sum(counts.values())),
    }
    if cfg.bi.postgres_url:
        started = time.monotonic()
        try:
            pg_counts = bi.publish_postgres(target, cfg.bi.postgres_url)
        except Exception as exc:  # noqa: BLE001 - the PostgreSQL copy never fails a run either
            error = f"{type(exc).__name__}: {exc}".strip()
            context.log.warning(f"the PostgreSQL copy was not refreshed (its previous tables stay): {error}")
            metadata["postgres_error"] = MetadataValue.text(error)
        else:
            metadata["postgres_seconds"] = MetadataValue.float(round(time.monotonic() - started, 3))
            metadata["postgres_rows"] = MetadataValue.json(pg_counts)
            context.log.info(f"PostgreSQL copy published: {sum(pg_counts.values())} rows")
    yield Output(None, metadata=metadata)
