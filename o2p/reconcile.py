"""`o2p payouts reconcile FILE.jsonl` (rulebook §10, issue #12): WeChat Pay's transfer-bill query
responses, one JSON object a line, read back into the registry.

The whole file is checked before anything is recorded: a line that is not a JSON object with
`out_bill_no`, a known `state`, an integer `transfer_amount` and an RFC 3339 `update_time`; an
unknown `out_bill_no`; a `transfer_amount` or `openid` other than what was released; or a bill
that would leave a final state (SUCCESS, FAIL, CANCELLED) for a different one → InputError
(exit 2) naming each line, and nothing is recorded. For one bill, states apply in `update_time`
order (ties by state name, so that the outcome never depends on the order of lines or files);
an older state arriving after a newer one is kept in the history and changes nothing. A line
already imported (same bill, state and time) is not stored again: importing a file twice
changes nothing. `plan` is pure; `reconcile` reads the registry, plans, then records."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from o2p.errors import InputError

STATES = ("ACCEPTED", "PROCESSING", "WAIT_USER_CONFIRM", "TRANSFERING", "SUCCESS", "FAIL", "CANCELING", "CANCELLED")
FINAL = ("SUCCESS", "FAIL", "CANCELLED")
# Equal update_times (WeChat gives seconds) are ordered by the bill's lifecycle, every state that
# is not final before the final ones: at the same instant the final state is the newer one
LIFECYCLE = {s: i for i, s in enumerate(("ACCEPTED", "PROCESSING", "WAIT_USER_CONFIRM", "TRANSFERING",
                                          "CANCELING", "SUCCESS", "FAIL", "CANCELLED"))}
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")
MAX_SHOWN = 20


@dataclass(frozen=True)
class Result:
    line_no: int
    out_bill_no: str
    state: str
    update_time: str
    update_at_us: int
    transfer_amount: int
    openid: str | None
    raw: str

    def key(self) -> tuple[str, str, int]:
        return (self.out_bill_no, self.state, self.update_at_us)


def parse_time(text: str) -> int:
    """RFC 3339 (WeChat writes 2026-11-05T10:34:56+08:00) → epoch microseconds; an offset is required."""
    if not isinstance(text, str) or not RFC3339.fullmatch(text):
        raise ValueError("not an RFC 3339 time (YYYY-MM-DDThh:mm:ss with its offset, e.g. +08:00)")
    t = datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00").replace("t", "T"))
    if t.tzinfo is None:
        raise ValueError("an RFC 3339 time needs its offset (e.g. +08:00)")
    return int(t.timestamp()) * 1_000_000 + t.microsecond


def parse_line(line_no: int, text: str) -> Result:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg})") from None
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    missing = [k for k in ("out_bill_no", "state", "transfer_amount", "update_time") if k not in doc]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    no, state, amount = doc["out_bill_no"], doc["state"], doc["transfer_amount"]
    if not isinstance(no, str) or not no:
        raise ValueError("out_bill_no: not a string")
    if state not in STATES:
        raise ValueError(f"state {state!r}: not one of {', '.join(STATES)}")
    if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
        raise ValueError(f"transfer_amount {amount!r}: not a whole number of fen")
    try:
        at = parse_time(doc["update_time"])
    except (ValueError, TypeError) as exc:
        raise ValueError(f"update_time {doc['update_time']!r}: {exc}") from None
    openid = doc.get("openid")
    if openid is not None and not isinstance(openid, str):
        raise ValueError("openid: not a string")
    return Result(line_no, no, state, doc["update_time"], at, amount, openid, text)


def plan(results: list[Result], bills: dict[str, dict], history: list[dict]) -> tuple[list[Result], dict, list[str]]:
    """(new lines to store, bills whose latest state changes → (state, time, µs), problems).

    `bills`: out_bill_no → the bill as released; `history`: the lines already stored for them."""
    problems: list[str] = []
    for r in results:
        b = bills.get(r.out_bill_no)
        if b is None:
            problems.append(f"line {r.line_no}: out_bill_no {r.out_bill_no} is not a bill of any released batch")
            continue
        if r.transfer_amount != b["net_fen"]:
            problems.append(f"line {r.line_no}: bill {r.out_bill_no}: transfer_amount {r.transfer_amount} fen, "
                            f"released {b['net_fen']} fen")
        if r.openid is not None and b.get("openid") and r.openid != b["openid"]:
            problems.append(f"line {r.line_no}: bill {r.out_bill_no}: openid {r.openid}, released to {b['openid']}")
    known = {(h["out_bill_no"], h["state"], h["update_at_us"]) for h in history}
    new: dict[tuple, Result] = {}
    for r in results:
        if r.key() not in known and r.key() not in new:
            new[r.key()] = r
    timeline: dict[str, list[tuple[int, str, str, int | None]]] = {}
    for h in history:
        timeline.setdefault(h["out_bill_no"], []).append((h["update_at_us"], h["state"], h["update_time"], None))
    for r in new.values():
        timeline.setdefault(r.out_bill_no, []).append((r.update_at_us, r.state, r.update_time, r.line_no))
    states: dict[str, tuple[str, str, int]] = {}
    for no, events in timeline.items():
        if no not in bills:
            continue
        events.sort(key=lambda e: (e[0], LIFECYCLE[e[1]]))
        final = None
        for at, state, when, line_no in events:
            if final is not None and state != final[1]:
                where = f"line {line_no}" if line_no is not None else f"line {final[3]}"
                problems.append(f"{where}: bill {no} would leave the final state {final[1]} "
                                f"({final[2]}) for {state} ({when}): a final state never changes")
                break
            if state in FINAL and final is None:
                final = (at, state, when, line_no)
        last = events[-1]
        b = bills[no]
        if (last[1], last[0]) != (b.get("state"), b.get("state_at_us")):
            states[no] = (last[1], last[2], last[0])
    return sorted(new.values(), key=lambda r: r.line_no), states, problems


def reconcile(cfg, path: Path, who: str) -> dict:
    from o2p.registry import RETURNED_STATES, Registry

    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 (byte {exc.start}); nothing recorded") from None
    results, problems = [], []
    # lines end at \n (\r\n too); splitlines() would also split at U+2028 inside a JSON string
    for n, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        try:
            results.append(parse_line(n, line))
        except ValueError as exc:
            problems.append(f"line {n}: {exc}")
    if problems:
        _refuse(path, problems)
    reg = Registry(cfg.registry)
    nos = {r.out_bill_no for r in results}

    def decide(bills: dict, history: list[dict]):
        new, states, found = plan(results, bills, history)
        if found:
            _refuse(path, found)
        return ([{"out_bill_no": r.out_bill_no, "state": r.state, "update_time": r.update_time,
                  "update_at_us": r.update_at_us, "transfer_amount": r.transfer_amount, "openid": r.openid,
                  "line_no": r.line_no, "raw": r.raw} for r in new], states)

    # bills, history, the plan and the writes in one locked transaction: two imports at once
    # are applied one after the other, each against what the other recorded
    new, states = reg.reconcile_locked(nos, decide, file_sha256=sha, who=who, file_name=path.name)
    after = reg.bills(nos)
    return {"lines": len(results), "new": len(new), "changed": len(states), "sha256": sha,
            "returned": sorted(no for no, b in after.items() if b["state"] in RETURNED_STATES
                               and b["applied_in"] is None)}


def _refuse(path: Path, problems: list[str]) -> None:
    shown = problems[:MAX_SHOWN] + ([f"… and {len(problems) - MAX_SHOWN} more"] if len(problems) > MAX_SHOWN else [])
    raise InputError(f"{path}: {len(problems)} problem(s), nothing recorded:\n  " + "\n  ".join(shown))


def simulate_results(cfg, period: str, *, fail_share: float = 0.2, seed: int = 7) -> list[str]:
    """A transfer-results file for the bills of a released period, as WeChat Pay's query API
    would answer (for the demo and tests): every bill ACCEPTED, then WAIT_USER_CONFIRM, then
    SUCCESS — or, for about `fail_share` of them, FAIL (the account is abnormal) or CANCELLED (the
    promoter never confirmed). Lines are shuffled, as results arrive."""
    import random
    from datetime import timedelta

    from o2p.registry import Registry
    from o2p.timeutil import SHANGHAI, from_us, period_end_us

    bills = sorted(Registry(cfg.registry).bills(period=period).values(), key=lambda b: b["promoter_id"])
    if not bills:
        raise InputError(f"period {period} has no transfer bills (not released, or nobody was paid)")
    rnd = random.Random(seed)
    start = from_us(period_end_us(period)).astimezone(SHANGHAI) + timedelta(days=1, hours=10)
    lines = []
    for i, b in enumerate(bills):
        t0 = start + timedelta(minutes=i)

        def emit(state, at, b=b, **extra):
            lines.append(json.dumps({"out_bill_no": b["out_bill_no"], "state": state, "transfer_amount": b["net_fen"],
                                     "update_time": at.isoformat(timespec="seconds"), "mch_id": "1900000109",
                                     **({"openid": b["openid"]} if b["openid"] else {}), **extra}, ensure_ascii=False))
        emit("ACCEPTED", t0)
        roll = rnd.random()
        if roll < fail_share / 2:
            emit("FAIL", t0 + timedelta(minutes=5), fail_reason="PAYEE_ACCOUNT_ABNORMAL")
            continue
        emit("WAIT_USER_CONFIRM", t0 + timedelta(minutes=1))
        if roll < fail_share:
            emit("CANCELLED", t0 + timedelta(days=1), fail_reason="USER_NOT_CONFIRMED")
        else:
            emit("SUCCESS", t0 + timedelta(hours=3))
    rnd.shuffle(lines)
    return lines
