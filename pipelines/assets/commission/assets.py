"""Commission entitlements in dbt-duckdb, monthly partitions (one dbt run per period, with the
period's bounds as vars), and the Great Expectations commission gate as a blocking check."""


import json
import os
from collections.abc import Mapping
from typing import Any

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    MetadataValue,
    Output,
    asset_check,
)
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets

from expectations import suites
from expectations.runner import SuiteResult, run_suite
from o2p import bi, layout
from o2p.config import Config
from o2p.errors import GateFailed, O2PError
from o2p.gates import Gate
from o2p.layout import ensure_schema_files
from o2p.periods import check_order
from o2p.quoting import dbt_glob
from o2p.registry import Registry
from pipelines.lib import builds, event_ids, quality
from pipelines.lib.dbt_manifest import manifest_path
from pipelines.lib.duck import POOL, connect
from pipelines.lib.partitions import monthly, period_dbt_vars
from pipelines.resources import O2PConfig

ENTITLEMENTS = AssetKey(["marts", "fct_commission_entitlements"])


class Translator(DagsterDbtTranslator):
    """Keys mirror storage: [schema, table]; sources map to the assets that write them."""

    def get_asset_key(self, props: Mapping[str, Any]) -> AssetKey:
        meta = props.get("meta", {}).get("dagster", {}) or props.get("config", {}).get("meta", {}).get("dagster", {})
        if props["resource_type"] == "source" and meta.get("asset_key"):
            return AssetKey(meta["asset_key"])
        if props["resource_type"] == "model":
            return AssetKey([props["config"].get("schema") or "main", props["name"]])
        return super().get_asset_key(props)

    def get_group_name(self, props: Mapping[str, Any]) -> str | None:
        """dbt models grouped by layer in the UI (staging, intermediate, marts), as dbt Labs'
        guide lays a project out."""
        return props.get("config", {}).get("schema") or "marts"


def dbt_vars(cfg: Config, period: str) -> dict:
    """The pure mapping from a period and the config to dbt vars (unit-tested)."""
    rate = cfg.override_rate
    return {
        **period_dbt_vars(period),
        # quoted SQL text (o2p.quoting): any character of the home path reaches DuckDB intact
        "landing_glob": dbt_glob(cfg.landing_path, "{identifier}/*/*.parquet"),
        "warehouse_glob": dbt_glob(cfg.warehouse_path, "{identifier}/*/*.parquet"),
        "reference_glob": dbt_glob(layout.reference_dir(cfg.warehouse_path), "{identifier}.parquet"),
        "override_rate_e4": int(rate * 10000),
        "auto_confirm_days": cfg.settlement.auto_confirm_days,
        "return_window_days": cfg.settlement.return_window_days,
    }


@dbt_assets(
    manifest=manifest_path(),
    dagster_dbt_translator=Translator(),
    partitions_def=monthly,
    pool=POOL,
    name="commission_dbt",
)
def commission_dbt(context: AssetExecutionContext, dbt: DbtCliResource, o2p: O2PConfig):
    cfg = o2p.get()
    if context.job_def.name == "release_job":   # refused before any work: the month has not ended, or P−1 is not released
        for key in context.partition_keys:
            check_order(cfg, Registry(cfg.registry), key[:7])
    ensure_schema_files(cfg.landing_path)
    cfg.warehouse_path.mkdir(parents=True, exist_ok=True)
    conflicts = event_ids.refresh(cfg)   # copies landed since attribution ran are ignored too
    if conflicts:
        context.log.warning(f"{conflicts} conflicting event_id copies ignored (event_id_conflict anomalies)")
    with connect(cfg) as con:   # the settlement tables the marts' views read, empty in a new home
        bi.ensure_settlement_sources(con)
    os.environ["O2P_DUCKDB_PATH"] = str(cfg.duckdb_path)
    os.environ["O2P_DBT_TARGET"] = cfg.environment
    # A run of the money path only (the BI models left to a later run of the plan, Step.bi): a
    # test runs when every model it reads is selected (dbt's `cautious`), so a singular test that
    # reads a BI mart too waits for the run that builds it; dagster-dbt reads this when it calls
    # dbt. A full run (every model) keeps dbt's default: it runs every test, sources' included.
    whole_project = set(context.selected_asset_keys) == set(commission_dbt.keys)
    if not whole_project:
        os.environ["DBT_INDIRECT_SELECTION"] = "cautious"
    else:
        os.environ.pop("DBT_INDIRECT_SELECTION", None)
    # what these tables are built from, recorded so that a release on the same inputs can reuse
    # them (pipelines/lib/builds.py); forgotten before dbt starts, recorded again if it succeeds
    inputs = builds.fingerprint(cfg, dbt_vars(cfg, context.partition_keys[0]))
    builds.starting(cfg, inputs, [k[:7] for k in context.partition_keys])
    for key in context.partition_keys:
        vars_ = dbt_vars(cfg, key)
        context.log.info(f"dbt build for period {vars_['period']}")
        # dbt's artifacts of this period's run under $O2P_HOME, replaced by the next run of the same
        # period (dagster-dbt's default is a new folder in the project for every run, forever)
        target = cfg.home_path / "dbt" / vars_["period"]
        run = dbt.cli(["build", "--vars", json.dumps(vars_)], context=context, target_path=target, raise_on_error=False)
        marts = []   # held until dbt has exited (DuckDB: one process at a time), then counted
        for event in run.stream():
            if isinstance(event, Output) and context.asset_key_for_output(event.output_name).path[0] == "marts":
                marts.append(event)
            else:
                yield event
        yield from with_mart_metadata(cfg, [(event, context.asset_key_for_output(event.output_name))
                                            for event in marts], vars_["period"])
        if not run.is_successful():
            try:
                results = run.get_artifact("run_results.json")
            except FileNotFoundError:
                raise O2PError(f"period {vars_['period']}: dbt build failed before it ran any model "
                               "(its error is in the run's log)") from None
            raise_for_dbt(results, vars_["period"], cfg)
        with connect(cfg, read_only=True) as con:
            rows = builds.money_rows(con, vars_["period"])
        builds.built(cfg, inputs, vars_["period"], context.run_id, rows, whole_project)


PREVIEW_ROWS = 5


def with_mart_metadata(cfg: Config, outputs: list[tuple[Output, AssetKey]], period: str) -> list[Output]:
    """The marts' outputs with their metadata, read over one connection that is closed before
    they are yielded (opening the warehouse once per mart cost a second per build); the outputs
    unchanged when it cannot be opened."""
    try:
        con = connect(cfg, read_only=True)
    except Exception:  # noqa: BLE001 - metadata only: the materializations stand
        return [event for event, _ in outputs]
    try:
        return [event.with_metadata({**event.metadata, **mart_metadata(con, key, period)}) for event, key in outputs]
    finally:
        con.close()


def mart_metadata(con, key: AssetKey, period: str) -> dict:
    """A mart's rows of this period (`dagster/row_count`: the UI's row count) and its first rows
    as a preview; nothing when the warehouse cannot be read (the materialization stands)."""
    table = ".".join(key.path)
    try:
        cols = {r[0] for r in con.execute("select column_name from information_schema.columns "
                                          "where table_schema = ? and table_name = ?", key.path).fetchall()}
        where, params = ("where period = ?", [period]) if "period" in cols else ("", [])
        count = con.execute(f"select count(*) from {table} {where}", params).fetchone()[0]
        cur = con.execute(f"select * from {table} {where} order by all limit {PREVIEW_ROWS}", params)
        names, rows = [d[0] for d in cur.description], cur.fetchall()
    except Exception:  # noqa: BLE001 - metadata only
        return {}
    cell = lambda v: "" if v is None else str(v).replace("|", "\\|")  # noqa: E731
    md = "\n".join(["| " + " | ".join(names) + " |", "|" + "---|" * len(names),
                    *("| " + " | ".join(cell(v) for v in row) + " |" for row in rows)])
    return {"dagster/row_count": MetadataValue.int(int(count)),
            "preview": MetadataValue.md(f"first {len(rows)} of {count} rows of {period if where else 'the table'}:\n\n{md}")}


def _sample(cfg: Config, relation: str | None) -> str:
    """A few of the failing rows dbt stored (store_failures), for the message."""
    if not relation:
        return ""
    try:
        with connect(cfg, read_only=True) as con:
            cur = con.execute(f"select * from {relation} limit 3")
            cols = [d[0] for d in cur.description]
            return "; e.g. " + " | ".join(", ".join(f"{c}={v}" for c, v in zip(cols, row, strict=True))
                                          for row in cur.fetchall())
    except Exception:  # noqa: BLE001 - the message without a sample is still the message
        return ""


def raise_for_dbt(run_results: dict, period: str, cfg: Config) -> None:
    """A failed dbt test (data or unit) is a failed quality gate (exit 3); anything else is not."""
    bad = [r for r in run_results.get("results", []) if r.get("status") in ("fail", "error")]
    tests = [r for r in bad if r["unique_id"].split(".", 1)[0] in ("test", "unit_test")]
    if tests:
        raise GateFailed(f"period {period}: dbt test(s) failed, nothing downstream ran:\n" + "\n".join(
            f"  {r['unique_id']}: {(r.get('message') or '').strip()}"
            + (f" — {r['failures']} failing rows" if r.get("failures") else "")
            + (f", stored in {r['relation_name']}" if r.get("relation_name") else "")
            + _sample(cfg, r.get("relation_name"))
            for r in tests))
    raise O2PError(f"period {period}: dbt build failed: " + "; ".join(
        f"{r['unique_id']}: {(r.get('message') or '').strip()}" for r in bad))


@asset_check(asset=ENTITLEMENTS, name=Gate.COMMISSION.check, blocking=True,
             description="Great Expectations commission suite: 0 ≤ amount ≤ net, rates in [0, 1], one row per (promoter, line, role).")
def gx_commission(context: AssetCheckExecutionContext, o2p: O2PConfig) -> AssetCheckResult:
    cfg = o2p.get()
    period = context.partition_key[:7]
    try:
        with connect(cfg, read_only=True) as con:
            df = con.execute(f"select * from {layout.ENTITLEMENTS} where period = ?", [period]).df()
    except Exception as exc:  # noqa: BLE001 - a check that cannot read is a failed check
        result = SuiteResult(Gate.COMMISSION, False, error=f"cannot read the entitlements: {exc}")
    else:
        result = run_suite(Gate.COMMISSION, df, suites.commission, home=cfg.home_path,
                           id_columns=["promoter_id", "order_id", "line_id", "role"])
    quality.record(cfg, period, context.run.run_id, result)
    return quality.to_check(result)
