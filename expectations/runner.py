"""Run a suite on a pandas DataFrame with GX 1.x — a file-backed context under $O2P_HOME/gx
(suites, results, Data Docs), ephemeral only without a home (unit tests) — and return a plain,
JSON-able result: which expectation failed, on which column, observed value, failing rows.

GX has no DuckDB source: DuckDB tables are validated through pandas (style.md §10).
"""

from __future__ import annotations

import logging
import shutil
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from o2p import layout


@dataclass
class SuiteResult:
    suite: str
    success: bool
    evaluated: int = 0
    failures: list[dict] = field(default_factory=list)
    error: str | None = None
    rows: int = 0

    def __post_init__(self):
        # a plain str, whatever names it (o2p.gates.Gate is a StrEnum): the result goes into
        # Dagster metadata and JSON, which take str, not a str subclass
        self.suite = str(self.suite)

    @property
    def broken(self) -> bool:
        """The suite could not run (an internal error) and found nothing: not a finding about the
        data. A suite that found failures is failed, whatever else went wrong."""
        return is_broken(self.as_dict())

    def as_dict(self) -> dict:
        return {"suite": self.suite, "success": self.success, "expectations": self.evaluated,
                "rows": self.rows, "failures": self.failures, "error": self.error}

    def describe(self) -> str:
        if self.success:
            return f"{self.suite}: passed ({self.evaluated} expectations on {self.rows} rows)"
        if self.error and not self.failures:
            return f"{self.suite}: could not run: {self.error}"
        parts = [f"{self.suite}: FAILED" + (f" (and part of it could not run: {self.error})" if self.error else "")]
        for f in self.failures:
            parts.append(
                f"  {f.get('part', self.suite)}: {f['expectation']}({f.get('column') or ''}) observed {f.get('observed')!r}, "
                f"{f.get('unexpected_count', '?')} failing rows, e.g. {f.get('sample')}"
            )
        return "\n".join(parts)


def is_broken(result: dict) -> bool:
    """`SuiteResult.broken` of a recorded result (as_dict)."""
    return not result.get("success") and bool(result.get("error")) and not result.get("failures")


_contexts: dict = {}


def _gx_context(home: Path | None):
    """A file-backed GX context under $O2P_HOME/gx (suites, validation definitions, checkpoints,
    results and Data Docs), or an ephemeral one when no home is given (unit tests)."""
    key = str(home) if home else None
    if key not in _contexts:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        ctx = gx.get_context(mode="file", project_root_dir=str(home)) if home else gx.get_context(mode="ephemeral")
        # tqdm bars per suite on stdout are noise in logs and in the CLI; results carry the counts
        ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
        _contexts[key] = ctx
    return _contexts[key]


def docs_index(home: Path) -> Path:
    """Where the Data Docs of $O2P_HOME are built (after every validation)."""
    return layout.data_docs_index(home)


_docs_warned: set[str] = set()


def offline_docs(home: Path) -> bool:
    """Make the Data Docs of `home` load nothing from the network (expectations/datadocs.py):
    vendored CSS/JS instead of CDNs, no tracking logo, no external links. Never raises: when the
    pinned files are not cached and cannot be downloaded, the pages stay as GX wrote them and one
    warning line says so (once per process). A gate never fails because of its docs."""
    log = logging.getLogger("o2p.datadocs")
    site = docs_index(home).parent
    try:
        from expectations import datadocs

        if "vendor" in _docs_warned:    # tried (and failed) in this process: do not wait again
            return False
        report = datadocs.make_offline(site, timeout=10)
        if report.unexpected and "unexpected" not in _docs_warned:
            _docs_warned.add("unexpected")
            log.warning("Data Docs: dropped external files that expectations/vendor.py does not pin "
                        "(a newer GX?): %s", ", ".join(sorted(report.unexpected)))
        return True
    except Exception as exc:   # docs are a convenience; the gate's result stands without them
        _docs_warned.add("vendor")
        log.warning("Data Docs under %s left as GX wrote them (CSS/JS from public CDNs, shown bare "
                    "offline): %s; run `python -m expectations.vendor` once with network access",
                    site, exc)
        return False


def run_suite(name: str, df, build: Callable[[object], list], *, home: Path | None = None,
              id_columns: list[str] | None = None) -> SuiteResult:
    """Validate `df` with the suite `build(gx.expectations)` through a GX checkpoint.

    With a home, the suite, its validation definition and checkpoint are kept in the file context
    and the checkpoint's UpdateDataDocsAction rebuilds the Data Docs. Failing rows are named by
    `id_columns` (e.g. event_id), so a failure says which rows, not only how many.
    """
    name = str(name)   # a Gate (StrEnum) names GX objects as its plain value
    try:
        import great_expectations as gx
        from great_expectations.checkpoint import UpdateDataDocsAction

        ctx = _gx_context(home)
        source = ctx.data_sources.add_or_update_pandas("o2p")
        try:
            asset = source.get_asset(name)
        except LookupError:
            asset = source.add_dataframe_asset(name=name)
        try:
            batch_def = asset.get_batch_definition(name)
        except (KeyError, LookupError, ValueError):
            batch_def = asset.add_batch_definition_whole_dataframe(name)
        suite = ctx.suites.add_or_update(gx.ExpectationSuite(name=name, expectations=list(build(gx.expectations))))
        vd = ctx.validation_definitions.add_or_update(gx.ValidationDefinition(name=name, data=batch_def, suite=suite))
        result_format = {"result_format": "SUMMARY", "partial_unexpected_count": 5}
        if id_columns:
            result_format["unexpected_index_column_names"] = id_columns
        checkpoint = ctx.checkpoints.add_or_update(gx.Checkpoint(
            name=name, validation_definitions=[vd], result_format=result_format,
            actions=[UpdateDataDocsAction(name="data_docs")] if home else []))
        if home:
            # prune before the run, so the Data Docs index the action rebuilds lists what is kept
            prune_results(Path(home), name)
        run = checkpoint.run(batch_parameters={"dataframe": df})
        if home:
            offline_docs(Path(home))
        res = next(iter(run.run_results.values()))
        failures = []
        for r in res.results:
            if r.success:
                continue
            cfg = r.expectation_config
            info = r.result or {}
            sample = info.get("partial_unexpected_index_list") if id_columns else None
            failures.append({
                "expectation": cfg.type,
                "column": cfg.kwargs.get("column") or cfg.kwargs.get("column_list") or
                          (f"{cfg.kwargs.get('column_A')},{cfg.kwargs.get('column_B')}" if cfg.kwargs.get("column_A") else None),
                "observed": _jsonable(info.get("observed_value")),
                "unexpected_count": info.get("unexpected_count"),
                "sample": _jsonable(sample or info.get("partial_unexpected_list") or info.get("partial_unexpected_index_list")),
            })
        return SuiteResult(name, bool(res.success) and not failures, len(res.results), failures, rows=len(df))
    except Exception as exc:  # a check that cannot run is a failed check, never a missing one
        return SuiteResult(name, False, error=f"{type(exc).__name__}: {exc}",
                           failures=[{"expectation": "suite_ran", "observed": traceback.format_exc(limit=3)[-500:]}],
                           rows=len(df) if df is not None else 0)


KEEP_RESULTS = 200   # per suite: the Data Docs index is rebuilt from every kept result, each run


def prune_results(home: Path, suite: str, keep: int = KEEP_RESULTS) -> int:
    """Drop all but the newest `keep` validation results of a suite, and their Data Docs pages.
    (Kept forever, they make each docs rebuild slower: 0.23 s per validation at 10 results,
    0.5 s at 300.) The gate outcomes that matter live on in the manifests and quality records."""
    root = layout.gx_root(home) / "uncommitted"
    runs = sorted((root / "validations" / suite).glob("*/*"), key=lambda d: d.name)   # <run_name>/<time>
    removed = 0
    for old in runs[:max(len(runs) - keep + 1, 0)]:
        rel = old.relative_to(root / "validations")
        shutil.rmtree(old, ignore_errors=True)
        shutil.rmtree(root / "data_docs" / "local_site" / "validations" / rel, ignore_errors=True)
        removed += 1
    return removed


def merge(name: str, parts: list[SuiteResult]) -> SuiteResult:
    """One stage's result from several frames (e.g. landing: events, order lines, dead letters)."""
    failures = [{"part": p.suite, **f} for p in parts for f in p.failures]   # a merged part keeps its own
    errors = [f"{p.suite}: {p.error}" for p in parts if p.error]
    return SuiteResult(name, all(p.success for p in parts), sum(p.evaluated for p in parts), failures,
                       error="; ".join(errors) or None, rows=sum(p.rows for p in parts))


def _jsonable(v):
    if v is None or isinstance(v, str | int | float | bool):
        return v
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v][:5]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return str(v)
