"""The attribution decision trace for people (o2p/decisions.py, `o2p attribution why`, the
statement's "why this promoter"), on a trace written by hand as Spark lays it out; and its one
vocabulary, which Spark's code and the dbt mart's accepted values must use."""

import re

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from o2p import decisions, layout
from o2p.cli import main
from o2p.config import load_config

T = 1_791_777_600_000_000          # 2026-10-12T12:00:00+08:00
H = 3_600_000_000


def _row(order, event, rank, click, at, promoter, outcome, reason, *, valid=True, why="", share=None,
         order_share=None, reason_of_order="last_click", attributed="P2", day="2026-10-12"):
    return {"order_id": order, "order_event_id": event, "buyer_id": "B2", "order_share_id": order_share,
            "paid_at_us": T, "attribution_reason": reason_of_order, "attributed_promoter_id": attributed,
            "candidate_rank": rank, "click_event_id": click, "click_occurred_at_us": at, "promoter_id": promoter,
            "click_share_id": share, "is_valid": valid, "invalid_reasons": why, "outcome": outcome,
            "reason": reason, "model": "last_click", "config_hash": "h", "_day": day}


ROWS = [
    _row("O2", "o2", 1, "c204", T - H // 2, "P1", "lost", "invalid_click", valid=False, why="ua_bot"),
    _row("O2", "o2", 2, "c202", T - H, "P2", "won", "last_click"),
    _row("O2", "o2", 3, "c203", T - H, "P1", "lost", "tie_broken_by_event_id"),
    _row("O2", "o2", 4, "c201", T - 2 * H, "P1", "lost", "later_click_won"),
    # another order_paid of O2 at the same instant (an anomaly): the smaller event_id is counted
    _row("O2", "o9", 1, "c209", T - H, "P3", "won", "last_click"),
    _row("O5", "o5", None, None, None, None, "none", "no_click_in_window", valid=None, why=None,
         order_share="S-unknown", reason_of_order="organic", attributed=None),
]


def _home(tmp_path):
    cfg = load_config(None, home=tmp_path)
    root = layout.warehouse_table(cfg.warehouse_path, layout.ATTRIBUTION_DECISIONS)
    schema = pa.schema([(n, getattr(pa, t)()) for n, t in decisions.SCHEMA])
    for day in sorted({r["_day"] for r in ROWS}):
        rows = [r for r in ROWS if r["_day"] == day]
        folder = layout.event_date_dir(root, day)
        folder.mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist([{k: v for k, v in r.items() if k != "_day"} for r in rows],
                                            schema=schema), folder / "part-0.parquet")
    return cfg


def test_the_statement_line_names_the_winner_and_each_loser_with_its_reason(tmp_path):
    cfg = _home(tmp_path)
    got = decisions.read(cfg, ["O2", "O5", "O404"])
    assert set(got) == {"O2", "O5"}
    assert [r["click_event_id"] for r in got["O2"]] == ["c204", "c202", "c203", "c201"]   # o9 is not counted
    assert decisions.summary(got["O2"]) == (
        "c202 (P2) won by last_click; lost: c204 (P1) invalid_click, c203 (P1) tie_broken_by_event_id, "
        "c201 (P1) later_click_won")
    assert decisions.summary(got["O2"], most=1) == "c202 (P2) won by last_click; lost: c204 (P1) invalid_click, and 2 more"
    assert decisions.summary(got["O5"]) == "organic: no click of the buyer in the window"
    assert decisions.summary([]).startswith("no trace")


def test_attribution_why_prints_every_candidate_and_a_legend(tmp_path, capsys):
    _home(tmp_path)
    assert main(["--home", str(tmp_path), "attribution", "why", "--order", "O2"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "order O2 (order_paid o2), buyer B2, paid 2026-10-12T12:00:00+08:00, no share token",
        "attributed to P2: last_click (attribution.model last_click)",
        "  rank  click  at (Asia/Shanghai)         promoter  share  validity  outcome  reason",
        "  1     c204   2026-10-12T11:30:00+08:00  P1        -      ua_bot    lost     invalid_click",
        "  2     c202   2026-10-12T11:00:00+08:00  P2        -      valid     won      last_click",
        "  3     c203   2026-10-12T11:00:00+08:00  P1        -      valid     lost     tie_broken_by_event_id",
        "  4     c201   2026-10-12T10:00:00+08:00  P1        -      valid     lost     later_click_won",
        "reasons:",
        f"  invalid_click: {decisions.REASONS['invalid_click']}",
        f"  last_click: {decisions.REASONS['last_click']}",
        f"  tie_broken_by_event_id: {decisions.REASONS['tie_broken_by_event_id']}",
        f"  later_click_won: {decisions.REASONS['later_click_won']}",
    ]
    assert main(["--home", str(tmp_path), "attribution", "why", "--order", "O5"]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == [
        "organic (attribution.model last_click)",
        f"no click of the buyer in the window: {decisions.NONE['no_click_in_window']}"]
    assert main(["--home", str(tmp_path), "attribution", "why", "--order", "O404"]) == 2
    err = capsys.readouterr().err
    assert "o2p: order O404 has no attribution decision trace" in err and "is false in" not in err
    # with the trace switched off, the message says where
    off = tmp_path / "o2p.yaml"
    off.write_text("attribution:\n  decision_trace: false\n", encoding="utf-8")
    assert main(["--home", str(tmp_path), "--config", str(off), "attribution", "why", "--order", "O404"]) == 2
    assert f"attribution.decision_trace is false in {off}, so none is written" in capsys.readouterr().err


def test_attribution_why_help_says_what_it_reads_and_shows_an_example(capsys):
    import pytest

    with pytest.raises(SystemExit):
        main(["attribution", "why", "--help"])
    text = capsys.readouterr().out
    assert "--order ORDER_ID" in text and "Example: o2p attribution why --order" in text
    assert "share_token_precedence" in text


def test_the_reason_codes_have_one_home_that_spark_and_the_mart_follow():
    spark = (layout.DBT_PROJECT.parent / "pipelines/assets/attribution/spark_jobs.py").read_text()
    trace_code = spark[spark.index("def decision_trace("):spark.index("def wechat_lock(")]
    literals = set(re.findall(r'"([a-z_]+)"', trace_code))
    assert set(decisions.LOST) | set(decisions.NONE) <= literals, "every lost/none code is decided in Spark"
    assert set(decisions.OUTCOMES) <= literals
    mart = yaml.safe_load((layout.DBT_PROJECT / "models/marts/_marts__attribution_decisions.yml").read_text())
    cols = {c["name"]: c for c in mart["models"][0]["columns"]}

    def accepted(col):
        return [t["accepted_values"]["arguments"]["values"] for t in cols[col]["data_tests"]
                if isinstance(t, dict) and "accepted_values" in t][0]
    assert accepted("reason") == list(decisions.REASONS)
    assert accepted("outcome") == list(decisions.OUTCOMES)
    assert all(code in cols["reason"]["description"] for code in decisions.REASONS)
