"""`o2p report --period P` (issue #14): one self-contained HTML page of a period that people look at
rather than read — GMV, orders and commission by day; estimated vs settled; top promoters;
carried balances by reason; anomalies; returned transfers.

Where each figure comes from (each is a sum someone else can redo):
- the marts (by day, estimated vs settled, anomalies): from the BI copy `bi/o2p_bi.duckdb` when the
  CLI makes the report (a reader never holds the pipeline's file), from the warehouse itself when
  the release asset makes it (inside the run, where no other writer runs);
- the money paid and carried (top promoters, carried by reason): the release registry's balances
  of the released batch, the same rows `payout.csv` and `carried.csv` were rendered from;
- returned transfers: the registry's transfer bills (rulebook §10).

Charts are SVG drawn by matplotlib and written into the page, so the page needs no network and
no script at view time. Every figure the page shows is also in a JSON block
(`<script type="application/json" id="o2p-report-data">`) in integer fen, for tests and tools.
"""

from __future__ import annotations

import html
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from o2p import layout
from o2p.config import Config
from o2p.errors import InputError
from o2p.money import fen_to_cny
from o2p.registry import RETURNED_STATES, Registry
from o2p.timeutil import parse_period, period_end_us, period_start_us, shanghai_day

TOP = 10   # promoters listed by gross paid


@dataclass
class Report:
    period: str
    source: str                                   # the DuckDB file the mart figures were read from
    batch: dict | None = None                     # the released batch (registry), None before release
    daily: list[dict] = field(default_factory=list)
    estimated_vs_settled: dict | None = None      # totals per bucket, None when the mart is missing
    top_promoters: list[dict] = field(default_factory=list)
    carried_by_reason: list[dict] = field(default_factory=list)
    anomalies: list[dict] = field(default_factory=list)
    returned_transfers: list[dict] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)   # marts not found (e.g. never run)


def _tables(con) -> set[str]:
    return {f"{s}.{t}" for s, t in con.execute(
        "select schema_name, table_name from duckdb_tables() union all "
        "select schema_name, view_name from duckdb_views() where not internal").fetchall()}


def _rows(con, sql: str, params: list) -> list[dict]:
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


# By Shanghai day: every order paid (organic too) and the commission promoters were shown for it
DAILY_ORDERS_SQL = f"""
select paid_date::varchar as day, count(*)::bigint as orders, count(promoter_id)::bigint as attributed_orders,
       sum(gmv_fen)::bigint as gmv_fen
from {layout.ORDERS_FACT} where period = ? group by all order by day
"""
DAILY_COMMISSION_SQL = f"""
select date_day::varchar as day, sum(estimated_commission_fen)::bigint as commission_fen
from {layout.PROMOTER_DAILY} where date_day >= ?::date and date_day < ?::date group by all
"""
ESTIMATED_SQL = f"""
select coalesce(sum(estimated_fen), 0)::bigint as estimated_fen, coalesce(sum(settled_fen), 0)::bigint as settled_fen,
       coalesce(sum(pending_fen), 0)::bigint as pending_fen, coalesce(sum(voided_fen), 0)::bigint as voided_fen,
       coalesce(sum(carried_fen), 0)::bigint as carried_fen
from {layout.ESTIMATED_VS_SETTLED} where period = ?
"""

ANOMALIES_SQL = f"""
select kind, count(*)::bigint as count, coalesce(sum(amount_fen), 0)::bigint as amount_fen
from {layout.ANOMALIES} where period = ? group by kind order by kind
"""


def _marts(report: Report, db: Path, read_only: bool) -> None:
    import duckdb

    if not db.exists():
        report.missing.append(f"{db} (no run has published the marts yet: `o2p run`)")
        return
    first, after = _bounds(report.period)
    with duckdb.connect(str(db), read_only=read_only) as con:
        have = _tables(con)
        missing = [t for t in (layout.ORDERS_FACT, layout.PROMOTER_DAILY, layout.ESTIMATED_VS_SETTLED,
                               layout.ANOMALIES) if t not in have]
        report.missing += missing
        if not missing:
            commission = {r["day"]: r["commission_fen"] for r in _rows(con, DAILY_COMMISSION_SQL, [first, after])}
            report.daily = [{**r, "commission_fen": commission.get(r["day"], 0)}
                            for r in _rows(con, DAILY_ORDERS_SQL, [report.period])]
            report.estimated_vs_settled = _rows(con, ESTIMATED_SQL, [report.period])[0]
            report.anomalies = _rows(con, ANOMALIES_SQL, [report.period])


def _bounds(period: str) -> tuple[str, str]:
    """The first day of the period and of the next, as ISO dates."""
    return shanghai_day(period_start_us(period)), shanghai_day(period_end_us(period))


def _registry(report: Report, cfg: Config) -> None:
    reg = Registry(cfg.registry)
    b = reg.batch(report.period)
    if b is None or b["status"] != "released":
        return
    report.batch = {k: b[k] for k in ("batch_id", "folder", "row_count", "gross_fen", "tax_fen", "net_fen",
                                      "released_at", "released_by")}
    approval = reg.approval(report.period)
    report.batch["approved_by"] = approval["approved_by"] if approval else None
    rows = reg.balances(report.period)
    paid = sorted((r for r in rows if r["gross_fen"] > 0), key=lambda r: (-r["gross_fen"], r["promoter_id"]))
    report.top_promoters = [{k: r[k] for k in ("promoter_id", "gross_fen", "tax_fen", "net_fen")} for r in paid[:TOP]]
    carried: dict[str, dict] = {}
    for r in rows:
        if r["carried_out_fen"] != 0:
            c = carried.setdefault(r["carry_reason"] or "", {"reason": r["carry_reason"] or "", "promoters": 0,
                                                             "carried_fen": 0})
            c["promoters"] += 1
            c["carried_fen"] += r["carried_out_fen"]
    report.carried_by_reason = sorted(carried.values(), key=lambda c: c["reason"])
    for bill in sorted(reg.bills().values(), key=lambda x: x["out_bill_no"]):
        if (bill["period"] == report.period and bill["state"] in RETURNED_STATES) or bill["applied_in"] == report.period:
            report.returned_transfers.append({
                "out_bill_no": bill["out_bill_no"], "promoter_id": bill["promoter_id"], "paid_in": bill["period"],
                "net_fen": bill["net_fen"], "state": bill["state"], "applied_in": bill["applied_in"]})


def gather(cfg: Config, period: str, db: Path | None = None) -> Report:
    """The figures of `period`, read from `db` (default: the BI copy, read-only) and the registry.
    The pipeline's own file is opened as the run's other connections are (DuckDB refuses two
    configurations of one file in a process), and only read."""
    parse_period(period)
    db = Path(db) if db is not None else layout.bi_duckdb_file(cfg.home_path)
    report = Report(period=period, source=str(db))
    _marts(report, db, read_only=db != Path(cfg.duckdb_path))
    _registry(report, cfg)
    return report


# ---- rendering ------------------------------------------------------------------------------------
def _pyplot():
    """matplotlib's pyplot, headless, drawing the same bytes for the same figures."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "o2p"
    matplotlib.rcParams["svg.fonttype"] = "none"   # text stays text (the page's font), not glyph outlines
    import matplotlib.pyplot as plt

    return plt


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    _pyplot().close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]   # drop the XML prolog and doctype: the SVG goes inline


def daily_chart(daily: list[dict]) -> str:
    plt = _pyplot()
    days = [d["day"][5:] for d in daily]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 5.2), sharex=True, height_ratios=[3, 2])
    top.bar(days, [d["gmv_fen"] / 100 for d in daily], color="#5b8def", label="GMV (CNY)")
    top.set_ylabel("GMV, CNY")
    ax2 = top.twinx()
    ax2.plot(days, [d["commission_fen"] / 100 for d in daily], color="#e8590c", marker="o", ms=3,
             label="commission (CNY)")
    ax2.set_ylabel("commission, CNY")
    bottom.bar(days, [d["orders"] for d in daily], color="#868e96", label="orders")
    bottom.set_ylabel("orders")
    bottom.tick_params(axis="x", labelrotation=90, labelsize=7)
    bottom.bar(days, [d["attributed_orders"] for d in daily], color="#2f9e44", label="attributed")
    top.set_title("By day (Asia/Shanghai): GMV and commission shown; orders paid")
    fig.legend(loc="upper right", bbox_to_anchor=(0.9, 0.88), fontsize=8)
    return _svg(fig)


EVS_BUCKETS = ("estimated_fen", "settled_fen", "pending_fen", "voided_fen", "carried_fen")
EVS_COLORS = {"settled_fen": "#2f9e44", "pending_fen": "#fab005", "voided_fen": "#e03131", "carried_fen": "#868e96"}


def estimated_chart(evs: dict) -> str:
    """One bar of the estimate and one stacked bar of where it went (a negative pending, a
    clawback still to book, is drawn below zero)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 2.4))
    ax.barh(["estimated"], [evs["estimated_fen"] / 100], color="#5b8def")
    pos = neg = 0.0
    for k, color in EVS_COLORS.items():
        v = evs[k] / 100
        left = pos if v >= 0 else neg
        ax.barh(["accounted"], [v], left=left, color=color, label=k.removesuffix("_fen"))
        pos, neg = (pos + v, neg) if v >= 0 else (pos, neg + v)
    ax.set_xlabel("CNY")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.02), ncol=4, fontsize=8, frameon=False)
    return _svg(fig)


def bars_chart(labels: list[str], values_fen: list[int], title: str, color: str) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 0.4 * max(len(labels), 2) + 0.8))
    ax.barh(labels[::-1], [v / 100 for v in values_fen[::-1]], color=color)
    ax.set_xlabel("CNY")
    ax.set_title(title)
    return _svg(fig)


def _cny(fen: int) -> str:
    return f'<span data-fen="{fen}">{fen_to_cny(fen)}</span>'


def _table(columns: list[tuple[str, str]], rows: list[dict]) -> str:
    """columns: (key, heading); keys ending in _fen are shown in CNY."""
    head = "".join(f"<th>{html.escape(h)}</th>" for _, h in columns)
    body = []
    for r in rows:
        cells = []
        for k, _ in columns:
            v = r.get(k)
            if k.endswith("_fen") and isinstance(v, int):
                cells.append(f'<td class="num">{_cny(v)}</td>')
            elif isinstance(v, int):
                cells.append(f'<td class="num">{v}</td>')
            else:
                cells.append(f"<td>{html.escape('' if v is None else str(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


CSS = """
body{font-family:system-ui,-apple-system,"Noto Sans CJK SC","PingFang SC",sans-serif;margin:2rem auto;max-width:1100px;color:#212529}
h1{font-size:1.6rem;margin-bottom:.2rem} h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #dee2e6}
.sub{color:#6c757d;margin-top:0} .cards{display:flex;gap:1rem;flex-wrap:wrap}
.card{border:1px solid #dee2e6;border-radius:6px;padding:.6rem 1rem;min-width:9rem}
.card b{display:block;font-size:1.3rem} table{border-collapse:collapse;font-size:.9rem}
th,td{padding:.25rem .7rem;border-bottom:1px solid #e9ecef;text-align:left} td.num{text-align:right;font-variant-numeric:tabular-nums}
.empty{color:#6c757d;font-style:italic} .warn{color:#c92a2a} svg{max-width:100%;height:auto}
.row{display:flex;gap:2rem;flex-wrap:wrap;align-items:flex-start}
"""


def render(report: Report) -> str:
    e = html.escape
    b = report.batch
    parts = [f"<h1>o2p — period {e(report.period)}</h1>"]
    if b:
        who = f"released by {e(b['released_by'] or '?')} at {e(b['released_at'] or '?')}"
        if b.get("approved_by"):
            who += f", approved by {e(b['approved_by'])}"
        parts.append(f'<p class="sub">batch {e(b["batch_id"])} · {who}</p>')
    else:
        parts.append('<p class="sub warn">not released yet: the figures below are the marts as of the last run</p>')
    gmv = sum(d["gmv_fen"] for d in report.daily)
    commission = sum(d["commission_fen"] for d in report.daily)
    orders = sum(d["orders"] for d in report.daily)
    attributed = sum(d["attributed_orders"] for d in report.daily)
    cards = [("orders", str(orders)), ("attributed to a promoter", str(attributed)), ("GMV, CNY", _cny(gmv)),
             ("commission shown at payment, CNY", _cny(commission))]
    if b:
        cards += [("paid gross, CNY", _cny(b["gross_fen"])), ("tax, CNY", _cny(b["tax_fen"])),
                  ("paid net, CNY", _cny(b["net_fen"])), ("promoters paid", str(b["row_count"]))]
    parts.append('<div class="cards">' + "".join(f'<div class="card">{label}<b>{v}</b></div>' for label, v in cards)
                 + "</div>")
    if report.missing:
        parts.append('<p class="warn">missing: ' + e(", ".join(report.missing)) + "</p>")

    parts.append("<h2>By day</h2>")
    parts.append(daily_chart(report.daily) if report.daily else '<p class="empty">no order paid in the period</p>')

    parts.append("<h2>Estimated vs settled</h2>")
    evs = report.estimated_vs_settled
    if evs and evs["estimated_fen"]:
        parts.append('<p class="sub">the commission shown when the orders of the period were paid, accounted for '
                     'fen by fen: estimated = settled + pending + voided + carried</p><div class="row">')
        parts.append(estimated_chart(evs))
        parts.append(_table([("bucket", "bucket"), ("amount_fen", "CNY")],
                            [{"bucket": k.removesuffix("_fen"), "amount_fen": evs[k]} for k in EVS_BUCKETS]))
        parts.append("</div>")
    else:
        parts.append('<p class="empty">no commission estimated for orders of the period</p>')

    parts.append('<h2>Top promoters</h2><div class="row">')
    if report.top_promoters:
        parts.append(bars_chart([p["promoter_id"] for p in report.top_promoters],
                                [p["gross_fen"] for p in report.top_promoters], f"top {TOP} by gross paid", "#2f9e44"))
        parts.append(_table([("promoter_id", "promoter"), ("gross_fen", "gross"), ("tax_fen", "tax"),
                             ("net_fen", "net")], report.top_promoters))
    else:
        parts.append('<p class="empty">nobody paid</p>')
    parts.append("</div>")

    parts.append("<h2>Carried to the next period, by reason</h2>")
    parts.append(_table([("reason", "reason"), ("promoters", "promoters"), ("carried_fen", "carried")],
                        report.carried_by_reason) if report.carried_by_reason
                 else '<p class="empty">nothing carried</p>')

    parts.append("<h2>Anomalies</h2>")
    parts.append(_table([("kind", "kind"), ("count", "count"), ("amount_fen", "amount")], report.anomalies)
                 if report.anomalies else '<p class="empty">none</p>')

    parts.append("<h2>Returned transfers</h2>")
    parts.append(_table([("out_bill_no", "bill"), ("promoter_id", "promoter"), ("paid_in", "paid in"),
                         ("net_fen", "amount"), ("state", "state"), ("applied_in", "paid again in")],
                        report.returned_transfers) if report.returned_transfers
                 else '<p class="empty">none</p>')

    data = json.dumps(asdict(report), ensure_ascii=False, sort_keys=True).replace("<", "\\u003c")   # no tag can close the block
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>o2p report {e(report.period)}</title><style>{CSS}</style></head><body>"
            + "\n".join(parts)
            + f'<p class="sub">figures from {e(report.source)} and the release registry; amounts in CNY, exact to the fen</p>'
            + f'<script type="application/json" id="o2p-report-data">{data}</script></body></html>\n')


def write(cfg: Config, period: str, out: Path | None = None, db: Path | None = None) -> Path:
    """Gather, render and write the page atomically; returns its path."""
    from o2p.fsio import write_bytes_atomic

    report = gather(cfg, period, db)
    if not report.daily and report.batch is None and report.missing:
        raise InputError(f"nothing to report for {period}: {', '.join(report.missing)}")
    out = Path(out) if out is not None else layout.report_file(cfg.home_path, period)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out, render(report).encode("utf-8"))
    return out
