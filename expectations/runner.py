"""Run a suite on a pandas DataFrame with an ephemeral GX 1.x context and return a plain,
JSON-able result: which expectation failed, on which column, observed value, failing rows.

GX has no DuckDB source: DuckDB tables are validated through pandas (style.md §10).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class SuiteResult:
    suite: str
    success: bool
    evaluated: int = 0
    failures: list[dict] = field(default_factory=list)
    error: str | None = None
    rows: int = 0

    def as_dict(self) -> dict:
        return {"suite": self.suite, "success": self.success, "expectations": self.evaluated,
                "rows": self.rows, "failures": self.failures, "error": self.error}

    def describe(self) -> str:
        if self.success:
            return f"{self.suite}: passed ({self.evaluated} expectations on {self.rows} rows)"
        if self.error:
            return f"{self.suite}: could not run: {self.error}"
        parts = [f"{self.suite}: FAILED"]
        for f in self.failures:
            parts.append(
                f"  {f['expectation']}({f.get('column') or ''}) observed {f.get('observed')!r}, "
                f"{f.get('unexpected_count', '?')} failing rows, e.g. {f.get('sample')}"
            )
        return "\n".join(parts)


_context = None


def _gx_context():
    global _context
    if _context is None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        _context = gx.get_context(mode="ephemeral")
        # tqdm bars per suite on stdout are noise in logs and in the CLI; results carry the counts
        _context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return _context


def run_suite(name: str, df, build: Callable[[object], list]) -> SuiteResult:
    """`build(gx.expectations)` returns the expectations of the suite."""
    try:
        import great_expectations as gx

        ctx = _gx_context()
        source = ctx.data_sources.add_or_update_pandas(f"o2p_{name}")
        asset = source.add_dataframe_asset(name=f"{name}_asset")
        batch_def = asset.add_batch_definition_whole_dataframe(f"{name}_batch")
        suite = gx.ExpectationSuite(name=name)
        for exp in build(gx.expectations):
            suite.add_expectation(exp)
        batch = batch_def.get_batch(batch_parameters={"dataframe": df})
        res = batch.validate(suite, result_format={"result_format": "SUMMARY", "partial_unexpected_count": 5})
        failures = []
        for r in res.results:
            if r.success:
                continue
            cfg = r.expectation_config
            info = r.result or {}
            failures.append({
                "expectation": cfg.type,
                "column": cfg.kwargs.get("column") or cfg.kwargs.get("column_list") or
                          (f"{cfg.kwargs.get('column_A')},{cfg.kwargs.get('column_B')}" if cfg.kwargs.get("column_A") else None),
                "observed": _jsonable(info.get("observed_value")),
                "unexpected_count": info.get("unexpected_count"),
                "sample": _jsonable(info.get("partial_unexpected_list") or info.get("partial_unexpected_index_list")),
            })
        return SuiteResult(name, bool(res.success) and not failures, len(res.results), failures, rows=len(df))
    except Exception as exc:  # a check that cannot run is a failed check, never a missing one
        return SuiteResult(name, False, error=f"{type(exc).__name__}: {exc}",
                           failures=[{"expectation": "suite_ran", "observed": traceback.format_exc(limit=3)[-500:]}],
                           rows=len(df) if df is not None else 0)


def _jsonable(v):
    if v is None or isinstance(v, str | int | float | bool):
        return v
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v][:5]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return str(v)
