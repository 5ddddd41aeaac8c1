"""Reports for finance and operators: the anomalies of a period, and one promoter's statement
explaining each fen from click to payout. Read-only: DuckDB opened read-only, released files and
the registry as they are."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from o2p import decisions, layout
from o2p.config import Config
from o2p.money import fen_to_cny
from o2p.quoting import file_list
from o2p.registry import RETURNED_STATES, Registry
from o2p.release import read_people_csv
from o2p.timeutil import SHANGHAI, from_us

ANOMALY_COLUMNS = ["period", "kind", "order_id", "line_id", "promoter_id", "event_id", "refund_id", "amount_fen", "detail"]


def _shanghai(us: int | None) -> str:
    return from_us(us).astimezone(SHANGHAI).isoformat(timespec="seconds") if us is not None else ""


def anomalies(cfg: Config, period: str) -> list[dict]:
    """marts.fct_anomalies of a period (computed by the commission run of that period)."""
    import duckdb

    if not cfg.duckdb_path.exists():
        return []
    with duckdb.connect(str(cfg.duckdb_path), read_only=True) as con:
        if not con.execute("select count(*) from information_schema.tables where table_schema = 'marts' "
                           "and table_name = 'fct_anomalies'").fetchone()[0]:
            return []
        rows = con.execute(f"select {', '.join(ANOMALY_COLUMNS)} from {layout.ANOMALIES} where period = ? "
                           "order by kind, order_id, line_id, promoter_id, event_id, refund_id", [period]).fetchall()
    return [dict(zip(ANOMALY_COLUMNS, r, strict=True)) for r in rows]


def anomalies_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, ANOMALY_COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _clicks(cfg: Config, ids: list[str]) -> dict[str, dict]:
    """The validated clicks named by a statement (time, channel, share token, buyer)."""
    import duckdb

    root = layout.warehouse_table(cfg.warehouse_path, layout.CLICKS_VALIDATED)
    files = sorted(root.glob("event_date=*/*.parquet")) if root.is_dir() else []
    if not ids or not files:
        return {}
    with duckdb.connect() as con:
        con.execute("create temp table wanted (event_id varchar)")
        con.executemany("insert into wanted values (?)", [[i] for i in ids])
        rows = con.execute(
            f"select c.event_id, c.occurred_at_us, c.channel, c.share_id, c.buyer_id, c.promoter_id "
            f"from read_parquet({file_list(files)}, union_by_name = true) c semi join wanted using (event_id)"
        ).fetchall()
    return {r[0]: {"at": _shanghai(r[1]), "channel": r[2], "share_id": r[3], "buyer_id": r[4], "promoter_id": r[5]}
            for r in rows}


def promoter_statement(cfg: Config, promoter_id: str, period: str | None = None) -> str:
    """Every released period's money of one promoter: lines (with the click that won each order
    and, once per order, "why this promoter": the winner's reason and the clicks that lost, with
    theirs: o2p/decisions.py), then the balance: carried in + movement = paid (gross − tax = net) or carried out, and why."""
    reg = Registry(cfg.registry)
    released = [b for b in reg.released() if b["status"] == "released" and (period is None or b["period"] == period)]
    if not released:
        return f"no released period{' ' + period if period else ''} yet"
    out = [f"Statement of promoter {promoter_id} (amounts in fen; CNY where paid)"]
    per_period = []
    ids: list[str] = []
    for b in released:
        lines = [r for r in read_people_csv(Path(b["folder"]) / "statement.csv") if r["promoter_id"] == promoter_id]
        ids += [r["click_event_id"] for r in lines if r["click_event_id"]]
        per_period.append((b, lines, reg.balance(b["period"], promoter_id)))
    clicks = _clicks(cfg, ids)
    why = decisions.read(cfg, [r["order_id"] for _, lines, _ in per_period for r in lines if r["order_id"]])
    for b, lines, bal in per_period:
        explained = set()
        out.append(f"\n{b['period']}  batch {b['batch_id']}  ({b['folder']})")
        if not lines and bal is None:
            out.append("  nothing moved")
            continue
        for r in lines:
            if r["role"] == "transfer_returned":
                out.append(f"  {r['note']}: {r['movement_fen']} back into the balance")
                continue
            c = clicks.get(r["click_event_id"], {})
            via = (f"click {r['click_event_id']} at {c.get('at', '?')} by buyer {c.get('buyer_id', '?')} "
                   f"in {c.get('channel', '?')}, share {c.get('share_id') or '-'} of {c.get('promoter_id', '?')}"
                   if r["click_event_id"] else "no click")
            out.append(f"  order {r['order_id']} line {r['line_id']} {r['role']}: {r['attribution_reason'] or '-'} "
                       f"via {via}")
            out.append(f"      rate {r['rate']} × net {r['net_fen']} = entitled {r['entitled_fen']}; "
                       f"booked before {r['previously_booked_fen']} → movement {r['movement_fen']}")
            if r["order_id"] not in explained:   # once per order: every line of an order has one promoter
                explained.add(r["order_id"])
                out.append(f"      why this promoter: {decisions.summary(why.get(r['order_id'], []))}")
        if bal is not None:
            back = f" + returned {bal['returned_fen']}" if bal.get("returned_fen") else ""
            out.append(f"  balance: carried in {bal['carried_in_fen']}{back} + movement {bal['movement_fen']} = {bal['balance_fen']}")
            if bal["gross_fen"] > 0:
                out.append(f"  paid: gross {fen_to_cny(bal['gross_fen'])} CNY − tax {fen_to_cny(bal['tax_fen'])} "
                           f"= net {fen_to_cny(bal['net_fen'])} CNY")
                bill = next((x for x in reg.bills(period=b["period"]).values() if x["promoter_id"] == promoter_id), None)
                if bill is not None:
                    state = bill["state"] or "no result read back yet"
                    where = (f"; returned: applied in {bill['applied_in']}" if bill["applied_in"] else
                             "; returned: to be applied in the next period released"
                             if bill["state"] in RETURNED_STATES else "")
                    out.append(f"  transfer {bill['out_bill_no']}: {state}"
                               + (f" at {bill['state_time']}" if bill["state_time"] else "") + where)
            elif bal["carried_out_fen"] != 0:
                out.append(f"  not paid: {bal['carried_out_fen']} carried to the next period ({bal['carry_reason']})")
    return "\n".join(out)
