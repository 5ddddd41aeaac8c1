"""Which commission builds (dbt) are still current, so that a release need not build again what a
run just built and gated on exactly the same inputs (issue #16: a release right after `o2p run`
spent 12 of its 17 s rebuilding the same tables).

The rule, the same one the upstream gates follow per day (pipelines/lib/gates.py): **a gate's
result is reused only for exactly the data it judged.** A release that reuses a build releases
tables that were built, dbt-tested and passed the Great Expectations commission gate in an
earlier run, on inputs that have not changed since; the manifest lists that gate's result as a
release that built them itself would (the same expectations, the same rows), and the run's
settlement step says which run it came from.

What "the inputs" are (`fingerprint`): everything a dbt build reads or is, other than the period —
every landed Parquet file and every Parquet file of the warehouse (name, size, mtime; the
reference tables and the conflicts file by content, since they are rewritten with the same
bytes), the dbt vars but the period, the dbt project's files and our Python (o2p, pipelines,
expectations: what builds and gates), and the versions of dbt and DuckDB. One changed file anywhere resets every record: live capture makes every release build again,
which is the safe side.

The record ($O2P_HOME/quality/builds.json):
    inputs   the fingerprint the builds below were made on
    periods  {period: {run_id, entitlements, anomalies}}: the money marts' rows of that period as
             that run left them (a count and a hash of every row), for a build whose dbt tests
             passed; its GX commission gate is the run's own record (pipelines/lib/quality.py)
    bi       the run id of the last whole-project build (the BI marts) with no build after it

Every build forgets its periods (and the BI marts) before dbt starts, so a build that fails
leaves nothing to reuse; only a build that succeeded records itself.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from o2p import layout
from o2p.config import Config
from o2p.gates import Gate
from pipelines.lib.partitions import period_dbt_vars

ROOT = Path(__file__).resolve().parents[2]
DBT_DIR = ROOT / "dbt_project"
CODE = ("o2p", "pipelines", "expectations")   # Python packages whose code builds or gates the tables
PROJECT_PARTS = ("dbt_project.yml", "profiles.yml", "packages.yml", "models", "macros", "tests")
PERIOD_VARS = frozenset(period_dbt_vars("2026-01"))   # the vars that name the period, not the inputs
MONEY_TABLES = {"entitlements": layout.ENTITLEMENTS, "anomalies": layout.ANOMALIES}


def record_path(cfg: Config) -> Path:
    return layout.quality_root(cfg.home_path) / "builds.json"


def _versions() -> str:
    out = []
    for dist in ("dbt-core", "dbt-duckdb", "duckdb"):
        try:
            out.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            out.append(f"{dist}==?")
    return ",".join(out)


def project_hash() -> str:
    """The code a build and its gate are: the dbt project's own files (models, macros, tests, the
    project and profile files) and our Python (the asset that calls dbt, the source definitions
    it generates, the Great Expectations suites): a deploy between a build and a release means
    building again."""
    h = hashlib.sha256()
    parts = [DBT_DIR / p for p in PROJECT_PARTS]
    for base in parts:
        files = sorted(f for f in base.rglob("*") if f.is_file()) if base.is_dir() else [base] if base.is_file() else []
        for f in files:
            h.update(f"{f.relative_to(ROOT)}\n".encode() + hashlib.sha256(f.read_bytes()).digest())
    for package in CODE:
        for f in sorted((ROOT / package).rglob("*.py")):
            h.update(f"{f.relative_to(ROOT)}\n".encode() + hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def _parquet(root: Path, skip: tuple[Path, ...] = ()) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(f for f in root.rglob("*.parquet")
                  if not any(s == f or s in f.parents for s in skip) and not f.name.startswith("."))


def fingerprint(cfg: Config, dbt_vars: dict) -> str:
    """Everything a commission build reads or is, but the period (see the module's docstring)."""
    h = hashlib.sha256()
    by_content = (layout.reference_dir(cfg.warehouse_path), cfg.warehouse_path / layout.EVENT_ID_CONFLICTS)
    for root in (cfg.landing_path, cfg.warehouse_path):
        for f in _parquet(root, skip=(*by_content, cfg.landing_path / "_tmp")):
            st = f.stat()
            h.update(f"{f.relative_to(root.parent)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    for f in (x for base in by_content for x in ([base] if base.is_file() else _parquet(base))):
        h.update(f"{f.relative_to(cfg.home_path) if f.is_relative_to(cfg.home_path) else f}:".encode()
                 + hashlib.sha256(f.read_bytes()).digest())
    h.update(json.dumps({k: v for k, v in dbt_vars.items() if k not in PERIOD_VARS}, sort_keys=True).encode())
    h.update(project_hash().encode())
    h.update(_versions().encode())
    return h.hexdigest()


def money_rows(con, period: str) -> dict[str, list]:
    """Per money mart: [rows, hash of every row] of this period as the warehouse holds it now."""
    out = {}
    for name, table in MONEY_TABLES.items():
        try:
            n, digest = con.execute(f"select count(*), coalesce(sum(hash(t))::varchar, '0') from {table} t "
                                    "where period = ?", [period]).fetchone()
        except Exception:  # noqa: BLE001 - no such table yet: nothing to reuse
            return {}
        out[name] = [int(n), digest]
    return out


def _load(cfg: Config) -> dict:
    try:
        rec = json.loads(record_path(cfg).read_text())
    except (OSError, ValueError):
        return {"inputs": None, "periods": {}, "bi": None}
    rec.setdefault("periods", {})
    rec.setdefault("bi", None)
    return rec


def _save(cfg: Config, rec: dict) -> None:
    path = record_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(rec, indent=2, sort_keys=True))
    os.replace(tmp, path)


def starting(cfg: Config, inputs: str, periods: list[str]) -> None:
    """Before dbt builds these periods: they, and the BI marts, are no longer anybody's build
    (the entitlements of any period feed a BI mart); other inputs than the record's reset it."""
    rec = _load(cfg)
    if rec["inputs"] != inputs:
        rec = {"inputs": inputs, "periods": {}, "bi": None}
    for p in periods:
        rec["periods"].pop(p, None)
    rec["bi"] = None
    _save(cfg, rec)


def built(cfg: Config, inputs: str, period: str, run_id: str, rows: dict, whole_project: bool) -> None:
    """After dbt built and tested `period` without a failure, on `inputs`."""
    rec = _load(cfg)
    if rec["inputs"] != inputs:   # another build started on other inputs meanwhile: it owns the record
        return
    if rows:
        rec["periods"][period] = {"run_id": run_id, **rows}
    if whole_project:
        rec["bi"] = run_id
    _save(cfg, rec)


@dataclass(frozen=True)
class Reuse:
    run_id: str            # the run that built (and gated) the period's money marts
    bi_run_id: str         # the run that built the BI marts last
    commission: dict       # its GX commission gate result, as recorded in that run


def current(cfg: Config, period: str, dbt_vars: dict, con=None) -> tuple[Reuse | None, str]:
    """The build of `period` a release can reuse, or None with the reason it cannot. `con`: an
    open warehouse connection (else one is opened read-only for the rows' hash)."""
    from pipelines.lib import quality

    rec = _load(cfg)
    mine = rec["periods"].get(period)
    if mine is None:
        return None, f"no build of {period} is recorded on the current inputs"
    if rec["bi"] is None:
        return None, "the BI marts were not built after the last money build"
    if rec["inputs"] != fingerprint(cfg, dbt_vars):
        return None, "what dbt reads (landed or warehouse files, reference data, config or dbt code) changed since"
    gate = quality.results(cfg, period, mine["run_id"]).get(Gate.COMMISSION)
    if not gate or not gate.get("success"):
        return None, f"the commission gate did not pass in run {mine['run_id'][:8]}"
    if con is None:
        from pipelines.lib.duck import connect

        with connect(cfg, read_only=True) as c:
            rows = money_rows(c, period)
    else:
        rows = money_rows(con, period)
    if rows != {k: mine[k] for k in MONEY_TABLES}:
        return None, f"the money marts of {period} are not the rows run {mine['run_id'][:8]} built"
    return Reuse(mine["run_id"], rec["bi"], gate), ""
