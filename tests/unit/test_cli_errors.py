"""How the CLI reports a run's failed checks: a gate that could not run is an internal error
(exit 1), a gate that found bad data is a failed gate (exit 3) — issue #11.1."""

from types import SimpleNamespace

import pytest
from dagster import AssetKey

from expectations.runner import SuiteResult
from o2p.errors import GateBroken, GateFailed
from pipelines.execute import raise_for as _raise_for
from pipelines.lib import quality


def _run_with(*results: SuiteResult):
    events = []
    for r in results:
        check = quality.to_check(r, check_name="gx_landing")
        data = SimpleNamespace(passed=check.passed, metadata=check.metadata, description=check.description,
                               check_name="gx_landing", asset_key=AssetKey(["attribution", "clicks_validated"]))
        events.append(SimpleNamespace(event_type_value="ASSET_CHECK_EVALUATION", asset_check_evaluation_data=data))
    return SimpleNamespace(all_events=events, success=False)


def test_a_gate_that_could_not_run_is_an_internal_error_not_a_failed_gate():
    broken = SuiteResult("landing", False, error="ParserException: unterminated string literal")
    with pytest.raises(GateBroken) as caught:
        _raise_for(_run_with(broken), "attribution_job")
    assert caught.value.exit_code == 1
    assert "could not run (an internal error, not a finding about the data)" in str(caught.value)
    assert "ParserException: unterminated string literal" in str(caught.value)


def test_a_gate_that_found_bad_rows_is_a_failed_gate_even_if_a_part_also_crashed():
    found = SuiteResult("landing", False, error="one part crashed", failures=[
        {"expectation": "expect_column_values_to_not_be_null", "column": "event_id", "observed": 1,
         "unexpected_count": 1, "sample": ["e1"]}])
    with pytest.raises(GateFailed) as caught:
        _raise_for(_run_with(found), "attribution_job")
    assert caught.value.exit_code == 3 and "expect_column_values_to_not_be_null(event_id)" in str(caught.value)
