"""The GX suites on tiny frames (ephemeral context): each fails on its defect, names the
expectation and the failing rows by id, and passes on the same frame without the defect."""

import pandas as pd

from expectations import suites
from expectations.runner import run_suite


def _commission(entitled_o2: int) -> pd.DataFrame:
    return pd.DataFrame({
        "promoter_id": ["PA", "PA"], "order_id": ["O1", "O2"], "line_id": ["L1", "L1"],
        "role": ["direct", "override"], "rate_e4": [1000, 20000], "paid_fen": [100, 100],
        "net_fen": [100, 100], "entitled_fen": [10, entitled_o2], "currency": ["CNY", "CNY"]})


def test_commission_above_its_net_is_named_with_its_row():
    ids = ["promoter_id", "order_id", "line_id", "role"]
    bad = run_suite("commission", _commission(200), suites.commission, id_columns=ids)
    assert not bad.success
    failed = {f["expectation"]: f for f in bad.failures}
    assert set(failed) == {"expect_column_pair_values_a_to_be_greater_than_b", "expect_column_values_to_be_between"}
    pair = failed["expect_column_pair_values_a_to_be_greater_than_b"]
    assert pair["column"] == "net_fen,entitled_fen" and pair["unexpected_count"] == 1
    assert pair["sample"][0]["order_id"] == "O2" and pair["sample"][0]["role"] == "override"
    good = _commission(2)
    good.loc[1, "rate_e4"] = 200
    assert run_suite("commission", good, suites.commission, id_columns=ids).success


def test_attribution_click_after_the_order_skips_organic_rows():
    df = pd.DataFrame({
        "order_event_id": ["o1", "o2", "o3"], "attribution_reason": ["last_click", "organic", "share_token"],
        "reason_matches_promoter": [True, True, True],
        "click_exists": [True, None, True], "click_is_valid": [True, None, True],
        "click_of_buyer": [True, None, True], "click_not_after_order": [True, None, False],
        "click_in_window": [True, None, True]})
    res = run_suite("attribution", df, lambda E: suites.attribution(E, 3), id_columns=["order_event_id"])
    assert [(f["column"], f["sample"]) for f in res.failures] == [
        ("click_not_after_order", [{"click_not_after_order": False, "order_event_id": "o3"}])]
    df.loc[2, "click_not_after_order"] = True
    assert run_suite("attribution", df, lambda E: suites.attribution(E, 3), id_columns=["order_event_id"]).success
    missing = run_suite("attribution", df, lambda E: suites.attribution(E, 4), id_columns=["order_event_id"])
    assert [(f["expectation"], f["observed"]) for f in missing.failures] == [("expect_table_row_count_to_equal", 3)]


def test_old_validation_results_and_their_pages_are_pruned(tmp_path):
    from expectations.runner import prune_results

    root = tmp_path / "gx" / "uncommitted"
    stamps = [f"20261125T0{i}0000.000000Z" for i in range(5)]
    for s in stamps:
        (root / "validations" / "landing" / "__none__" / s).mkdir(parents=True)
        (root / "data_docs" / "local_site" / "validations" / "landing" / "__none__" / s).mkdir(parents=True)
    (root / "validations" / "payout" / "__none__" / stamps[0]).mkdir(parents=True)   # another suite: untouched
    # keep 3: the 2 newest stay, the run about to start adds the third
    assert prune_results(tmp_path, "landing", keep=3) == 3
    assert sorted(p.name for p in (root / "validations" / "landing" / "__none__").iterdir()) == stamps[3:]
    assert sorted(p.name for p in (root / "data_docs/local_site/validations/landing/__none__").iterdir()) == stamps[3:]
    assert (root / "validations" / "payout" / "__none__" / stamps[0]).is_dir()


def test_the_landing_suite_takes_its_vocabularies_from_the_contracts():
    from streaming import contracts

    assert suites.EVENT_SOURCES == ["storefront", "bot"]
    assert suites.CHANNELS is contracts.CHANNELS and suites.EVENT_TYPES is contracts.EVENT_TYPES
