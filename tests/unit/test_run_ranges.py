"""`o2p run` attributes only days that can have data, in ranges of consecutive days (issue #11.3)."""

from pipelines.lib.partitions import START, run_ranges


def test_a_click_dated_2099_does_not_make_a_run_span_every_day_until_then():
    days = ["2026-09-24", "2026-09-25", "2026-09-27", "2026-10-05", "2099-01-01"]
    ranges, skipped = run_ranges(days, today="2026-12-01")
    assert ranges == [("2026-09-24", "2026-10-05")]      # gaps of a week or less are bridged
    assert skipped == ["2099-01-01"]


def test_a_run_never_bridges_more_than_a_week_without_data():
    ranges, _ = run_ranges(["2026-09-01", "2026-09-09", "2026-09-19", "2026-11-30"], today="2026-12-01")
    assert ranges == [("2026-09-01", "2026-09-09"), ("2026-09-19", "2026-09-19"), ("2026-11-30", "2026-11-30")]


def test_days_before_the_first_partition_and_after_tomorrow_are_skipped_tomorrow_is_not():
    ranges, skipped = run_ranges(["2000-01-01", START, "2026-12-02", "2026-12-03"], today="2026-12-01")
    assert ranges == [(START, START), ("2026-12-02", "2026-12-02")]
    assert skipped == ["2000-01-01", "2026-12-03"]


def test_nothing_landed_nothing_to_run():
    assert run_ranges([], today="2026-12-01") == ([], [])
