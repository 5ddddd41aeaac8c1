"""The quality gates, named once (nothing is released unless every stage's suite passed). Each
gate is a Great Expectations suite of the same name (`expectations/suites.py`), carried in Dagster
by a blocking asset check named `Gate.X.check`.

    landing, click_validity, attribution   per event day, judged where the data is produced
                                           and again before a release where their inputs changed
    commission, settlement, payout         per period, in the run that releases it (commission: or
                                           in the run whose build it reuses, on the same inputs:
                                           pipelines/lib/builds.py)
"""

from __future__ import annotations

from enum import StrEnum


class Gate(StrEnum):
    LANDING = "landing"
    CLICK_VALIDITY = "click_validity"
    ATTRIBUTION = "attribution"
    COMMISSION = "commission"
    SETTLEMENT = "settlement"
    PAYOUT = "payout"

    @property
    def check(self) -> str:
        """The Dagster asset check that carries this gate's result."""
        return f"gx_{self.value}"


UPSTREAM = (Gate.LANDING, Gate.CLICK_VALIDITY, Gate.ATTRIBUTION)
PER_PERIOD = (Gate.COMMISSION, Gate.SETTLEMENT, Gate.PAYOUT)
RELEASE = UPSTREAM + PER_PERIOD      # every one must pass in the releasing run (the manifest lists them)

LANDING_FRESH = "landing_fresh"      # not a gate: the warning-level freshness check of the landing tables
