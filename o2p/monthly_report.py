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
from o2p.timeutil import parse_period, period_end_us, period_start_us, shanghai_date_sql

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


DAILY_SQL = f"""
select {shanghai_date_sql('paid_at_us')}::varchar as day,
       count(distinct order_id)::bigint as orders,
       coalesce(sum(paid_fen) filter (where role = 'direct'), 0)::bigint as gmv_fen,
       coalesce(sum(entitled_fen), 0)::bigint as commission_fen
from {layout.ENTITLEMENTS}
where period = ? and paid_at_us >= ? and paid_at_us < ?
group by all order by day
"""

ANOMALIES_SQL = f"""
select kind, count(*)::bigint as count, coalesce(sum(amount_fen), 0)::bigint as amount_fen
from {layout.ANOMALIES} where period = ? group by kind order by kind
"""


def _marts(report: Report, db: Path) -> None:
    import duckdb

    if not db.exists():
        report.missing.append(f"{db} (no run has published the marts yet: `o2p run`)")
        return
    start, end = period_start_us(report.period), period_end_us(report.period)
    with duckdb.connect(str(db), read_only=True) as con:
        have = _tables(con)
        if layout.ENTITLEMENTS in have:
            report.daily = _rows(con, DAILY_SQL, [report.period, start, end])
        else:
            report.missing.append(layout.ENTITLEMENTS)
        if layout.ANOMALIES in have:
            report.anomalies = _rows(con, ANOMALIES_SQL, [report.period])
        else:
            report.missing.append(layout.ANOMALIES)


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
    """The figures of `period`, read from `db` (default: the BI copy) and the registry."""
    parse_period(period)
    db = Path(db) if db is not None else layout.bi_duckdb_file(cfg.home_path)
    report = Report(period=period, source=str(db))
    _marts(report, db)
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
    bottom.bar(days, [d["orders"] for d in daily], color="#868e96")
    bottom.set_ylabel("orders")
    bottom.tick_params(axis="x", labelrotation=90, labelsize=7)
    top.set_title("By day (Asia/Shanghai): GMV and commission of attributed orders; orders")
    fig.legend(loc="upper right", bbox_to_anchor=(0.9, 0.88), fontsize=8)
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
    cards = [("attributed orders", str(orders)), ("GMV attributed, CNY", _cny(gmv)),
             ("commission earned, CNY", _cny(commission))]
    if b:
        cards += [("paid gross, CNY", _cny(b["gross_fen"])), ("tax, CNY", _cny(b["tax_fen"])),
                  ("paid net, CNY", _cny(b["net_fen"])), ("promoters paid", str(b["row_count"]))]
    parts.append('<div class="cards">' + "".join(f'<div class="card">{label}<b>{v}</b></div>' for label, v in cards)
                 + "</div>")
    if report.missing:
        parts.append('<p class="warn">missing: ' + e(", ".join(report.missing)) + "</p>")

    parts.append("<h2>By day</h2>")
    parts.append(daily_chart(report.daily) if report.daily else '<p class="empty">no attributed order paid in the period</p>')

    parts.append("<h2>Estimated vs settled</h2>")
    evs = report.estimated_vs_settled
    if evs:
        parts.append(_table([("bucket", "bucket"), ("amount_fen", "CNY")],
                            [{"bucket": k, "amount_fen": v} for k, v in evs.items()]))
    else:
        parts.append('<p class="empty">not available</p>')

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
