"""Gate results of a run, kept as JSON under $O2P_HOME/quality/<period>/<run_id>/ so the
release can require that every gate passed *in its own run* and list them in the manifest. A
run that did not build its inputs itself adopts the result of the run that did, on exactly the
same data (the upstream days: pipelines/lib/gates.py; the commission build:
pipelines/lib/builds.py)."""

from __future__ import annotations

import json
from pathlib import Path

from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue

from expectations.runner import SuiteResult
from o2p import layout
from o2p.config import Config


def _dir(cfg: Config, period: str, run_id: str) -> Path:
    return layout.run_results_dir(cfg.home_path, period, run_id)


def _write(cfg: Config, period: str, run_id: str, result: dict) -> None:
    d = _dir(cfg, period, run_id)
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{result['suite']}.json").write_text(json.dumps(result, ensure_ascii=False, indent=2))


def record(cfg: Config, period: str, run_id: str, result: SuiteResult) -> None:
    _write(cfg, period, run_id, result.as_dict())


def adopt(cfg: Config, period: str, run_id: str, result: dict, *, from_run: str) -> None:
    """A gate result of another run, for exactly the data this run uses (pipelines/lib/builds.py),
    recorded as this run's with the run it came from."""
    _write(cfg, period, run_id, {**result, "reused_from_run": from_run})


def results(cfg: Config, period: str, run_id: str) -> dict[str, dict]:
    d = _dir(cfg, period, run_id)
    if not d.is_dir():
        return {}
    return {p.stem: json.loads(p.read_text()) for p in sorted(d.glob("*.json"))}


def to_check(result: SuiteResult, **kw) -> AssetCheckResult:
    return AssetCheckResult(
        passed=result.success,
        severity=AssetCheckSeverity.ERROR,
        description=result.describe(),
        metadata={
            "suite": str(result.suite),   # a Gate (StrEnum): Dagster serializes no enum of ours
            "rows": result.rows,
            "expectations": result.evaluated,
            "failures": MetadataValue.json(result.failures),
            **({"error": result.error} if result.error else {}),
        },
        **kw,
    )
