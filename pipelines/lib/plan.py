"""The order of work, in one place (issue #17): which runs follow which, for the sensors and the
schedule under `o2p serve` and for `o2p run`, which executes the same plan in one process.

  reference CSVs changed        → reference_job
  clicks / orders landed        → attribution_job over the days they make stale (one range run)
  an attribution run succeeded  → commission_job for every landed month from the range's first
  refunds landed                → commission_job likewise, from the refunds' first month
                                  (the BI marts and copy only in the last month's run: Step.bi)
  a month has ended             → release_job of the earliest period not released (in order)

Pure functions of dates and folders; the Dagster side is `pipelines/automation.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from o2p.timeutil import next_period
from pipelines.lib.partitions import run_ranges


@dataclass(frozen=True)
class Step:
    job: str
    partition: str | None = None
    partition_range: tuple[str, str] | None = None
    # commission_job: whether this run also builds the BI marts and publishes the BI copy. They
    # hold no period (they read every period's tables), so a plan of several months builds them
    # once, in its last commission run, rather than once per month
    bi: bool = True

    def __str__(self) -> str:
        if self.partition_range:
            return f"{self.job} {self.partition_range[0]}..{self.partition_range[1]}"
        return f"{self.job} {self.partition}" if self.partition else self.job


def commission_months(first_day: str, landed_months: list[str]) -> list[str]:
    """Entitlements are a cumulative snapshot per period: a change to the events of day D changes
    the period of D and every later one. The landed months from D's month on."""
    return sorted(m for m in set(landed_months) if m >= first_day[:7])


def landed_months(days: list[str]) -> list[str]:
    return sorted({d[:7] for d in days})


def pipeline_plan(days: list[str], today: str) -> tuple[list[Step], list[str]]:
    """What `o2p run` runs for these landed days: the reference data, attribution in ranges,
    commission of every landed month; and the days it skips (outside the daily partitions)."""
    ranges, skipped = run_ranges(days, today)
    if not ranges:
        return [], skipped
    kept = [d for d in days if d not in set(skipped)]
    steps = [Step("reference_job")]
    steps += [Step("attribution_job", partition_range=r) for r in ranges]
    months = commission_months(kept[0], landed_months(kept))
    steps += [Step("commission_job", partition=m, bi=m == months[-1]) for m in months]
    return steps, skipped


def months_between(first: str, last: str) -> list[str]:
    out, p = [], first
    while p <= last:
        out.append(p)
        p = next_period(p)
    return out


def next_release(first_period: str | None, released: list[str], last_ended: str) -> tuple[str | None, str]:
    """The period the release schedule releases: the earliest period from the first one to the
    month that has ended last which is not released yet (periods are released in order). None
    with the reason when there is none."""
    if first_period is None:
        return None, "nothing has been captured yet"
    if first_period > last_ended:
        return None, f"the first period {first_period} has not ended yet"
    done = set(released)
    for p in months_between(first_period, last_ended):
        if p not in done:
            return p, f"{p} is the earliest ended period not released"
    return None, f"every ended period up to {last_ended} is released"


def newer_files(root: Path, tables: tuple[str, ...], cursor_ns: int) -> tuple[dict[str, set[str]], int]:
    """Per table, the event dates of landed files written after `cursor_ns`, and the newest mtime."""
    new: dict[str, set[str]] = {t: set() for t in tables}
    newest = cursor_ns
    for table in tables:
        base = root / table
        if not base.is_dir():
            continue
        for part in base.glob("event_date=*"):
            for f in part.glob("*.parquet"):
                m = f.stat().st_mtime_ns
                if m > cursor_ns:
                    new[table].add(part.name.split("=", 1)[1])
                    newest = max(newest, m)
    return new, newest
