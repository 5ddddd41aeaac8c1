"""The attribution decision trace (issue #14): its vocabulary, and reading it for people.

Spark writes it beside the attribution (`pipelines/assets/attribution/spark_jobs.py:
decision_trace`, folder `warehouse/attribution_decisions/event_date=D/`): one row per
(order_paid event, click of its buyer in the order's lookback window, valid or not) saying
whether the click won and, if not, the rule of rulebook §4 it lost by. Read here straight from
the Parquet (DuckDB in memory, the warehouse file untouched: it works while a run holds it) by
`o2p attribution why` and `o2p payouts statement`.
"""

from __future__ import annotations

from o2p import layout
from o2p.config import Config
from o2p.quoting import file_list
from o2p.timeutil import SHANGHAI, from_us

# Every reason code, with what it means; the one home of the vocabulary (Spark, dbt's accepted
# values — tests/unit/test_decisions.py — and the CLI's legend read it).
WON = {
    "share_token": "the latest candidate carrying the order's share token (§4.1)",
    "last_click": "the latest candidate (§4.2)",
    "lock": "the click of the promoter the buyer was bound to (wechat_lock)",
}
LOST = {
    "invalid_click": "flagged by click validity (§3: ua_bot, flood): never a candidate",
    "self_purchase": "the rules chose it, but the buyer is its promoter and self_purchase is deny: the order is organic",
    "share_token_precedence": "another candidate carried the order's share token (§4.1)",
    "later_click_won": "a later candidate was chosen (wechat_lock: a later click of the bound promoter holds the lock)",
    "tie_broken_by_event_id": "the chosen click is at the same instant; the event_id decided (§4.3)",
    "locked_to_other_promoter": "wechat_lock: at the order the buyer was bound to another promoter",
    "no_active_lock": "wechat_lock: no lock was active at the order, which is organic",
}
NONE = {"no_click_in_window": "the buyer has no click in the order's window: the order is organic (§4.4)"}
REASONS = {**WON, **LOST, **NONE}
OUTCOMES = ("won", "lost", "none")

# The columns Spark writes, in order (pyarrow type names; event_date is the folder)
SCHEMA = [
    ("order_id", "string"), ("order_event_id", "string"), ("buyer_id", "string"),
    ("order_share_id", "string"), ("paid_at_us", "int64"), ("attribution_reason", "string"),
    ("attributed_promoter_id", "string"), ("candidate_rank", "int32"), ("clicks_in_window", "int32"),
    ("click_event_id", "string"),
    ("click_occurred_at_us", "int64"), ("promoter_id", "string"), ("click_share_id", "string"),
    ("is_valid", "bool_"), ("invalid_reasons", "string"), ("outcome", "string"), ("reason", "string"),
    ("model", "string"), ("config_hash", "string"),
]
COLUMNS = [n for n, _ in SCHEMA if n != "config_hash"]   # what people are shown


def _shanghai(us: int | None) -> str:
    return from_us(us).astimezone(SHANGHAI).isoformat(timespec="seconds") if us is not None else ""


def read(cfg: Config, order_ids: list[str]) -> dict[str, list[dict]]:
    """The trace rows of these orders, per order id: the rows of its counted order_paid (the
    earliest, ties by smallest event_id: rulebook §1), latest click first. An order of days
    attributed before the trace existed (or not yet) has no entry."""
    import duckdb

    root = layout.warehouse_table(cfg.warehouse_path, layout.ATTRIBUTION_DECISIONS)
    files = sorted(root.glob("event_date=*/*.parquet")) if root.is_dir() else []
    if not order_ids or not files:
        return {}
    with duckdb.connect() as con:
        con.execute("create temp table wanted (order_id varchar)")
        con.executemany("insert into wanted values (?)", [[i] for i in sorted(set(order_ids))])
        rows = con.execute(f"""
            with t as (select {', '.join(COLUMNS)}
                       from read_parquet({file_list(files)}, union_by_name = true) semi join wanted using (order_id))
            select * from t
            where order_event_id = (select first(order_event_id order by paid_at_us, order_event_id)
                                    from t as f where f.order_id = t.order_id)
            order by order_id, candidate_rank nulls last""").fetchall()
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r[0], []).append(dict(zip(COLUMNS, r, strict=True)))
    return out


def _unlisted(rows: list[dict]) -> int:
    """Clicks of the window the trace does not list (it keeps the latest ones and the chosen one)."""
    listed = sum(1 for r in rows if r["candidate_rank"] is not None)
    return max((rows[0]["clicks_in_window"] or 0) - listed, 0)


def _who(r: dict) -> str:
    return f"{r['click_event_id']} ({r['promoter_id']})"


def summary(rows: list[dict], most: int = 4) -> str:
    """"Why this promoter" on one line: the winner and its reason, then the losers' reasons."""
    if not rows:
        return ("no trace (its day was attributed without it: before the trace existed, or with "
                "attribution.decision_trace false)")
    head = rows[0]
    won = [r for r in rows if r["outcome"] == "won"]
    lost = [r for r in rows if r["outcome"] == "lost"]
    if won:
        text = f"{_who(won[0])} won by {won[0]['reason']}"
    elif head["outcome"] == "none":
        return "organic: no click of the buyer in the window"
    else:
        text = "organic: no click won"
    if lost:
        shown = ", ".join(f"{_who(r)} {r['reason']}" for r in lost[:most])
        hidden = max(len(lost) - most, 0) + _unlisted(rows)
        more = f", and {hidden} more" if hidden else ""
        text += f"; lost: {shown}{more}"
    return text


def explain(rows: list[dict]) -> str:
    """The full trace of one order_paid event for people: the decision, every candidate, a legend."""
    head = rows[0]
    share = f", share token {head['order_share_id']}" if head["order_share_id"] else ", no share token"
    who = (f"attributed to {head['attributed_promoter_id']}: {head['attribution_reason']}"
           if head["attributed_promoter_id"] else "organic")
    out = [f"order {head['order_id']} (order_paid {head['order_event_id']}), buyer {head['buyer_id']}, "
           f"paid {_shanghai(head['paid_at_us'])}{share}",
           f"{who} (attribution.model {head['model']})"]
    clicks = [r for r in rows if r["click_event_id"] is not None]
    if not clicks:
        out.append(f"no click of the buyer in the window: {NONE['no_click_in_window']}")
        return "\n".join(out)
    table = [("rank", "click", "at (Asia/Shanghai)", "promoter", "share", "validity", "outcome", "reason")]
    for r in clicks:
        table.append((str(r["candidate_rank"] or "-"), r["click_event_id"], _shanghai(r["click_occurred_at_us"]),
                      r["promoter_id"] or "", r["click_share_id"] or "-",
                      "valid" if r["is_valid"] else (r["invalid_reasons"] or "invalid"), r["outcome"], r["reason"]))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    out += ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table]
    if _unlisted(rows):
        out.append(f"  … and {_unlisted(rows)} older clicks of the window, not listed (the trace keeps the latest "
                   "ones and the chosen one)")
    if any(r["candidate_rank"] is None for r in clicks):
        out.append("  (rank -: the lock's click, older than the window; locks outlive it)")
    out.append("reasons:")
    out += [f"  {code}: {REASONS[code]}" for code in dict.fromkeys(r["reason"] for r in clicks)]
    return "\n".join(out)
