"""The `o2p` command (rulebook §9). Exit codes: 0 success, 2 bad input or config, 3 a quality
gate failed, 1 anything else."""

from __future__ import annotations

import sys

# First, before the imports below take their few hundred milliseconds: in an `o2p` process a
# SIGTERM/SIGINT during start-up is remembered, not fatal (capture then stops cleanly, exit 0;
# any other command gets it re-raised once its arguments are parsed).
from streaming.capture.stop_signals import record_early, restore_defaults

if __name__ == "__main__" or sys.argv[0].rsplit("/", 1)[-1] == "o2p":
    record_early()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from o2p.config import Config, load_config  # noqa: E402
from o2p.errors import GateFailed, InputError, O2PError, operator_message  # noqa: E402
from o2p.locks import exclusive  # noqa: E402


def say(msg: str) -> None:
    print(msg, flush=True)


# ---- Dagster execution (pipelines/execute.py) ---------------------------------------------
_INVOCATION = "o2p"   # the command line, for the runs' tags (set by main)


def _execute(cfg: Config, job_name: str, *, partition: str | None = None,
             partition_range: tuple[str, str] | None = None, bi: bool = True):
    from pipelines.execute import execute

    return execute(cfg, job_name, partition=partition, partition_range=partition_range, invocation=_INVOCATION,
                   bi=bi)


# ---- commands ----------------------------------------------------------------------------
def cmd_kafka(cfg: Config, args) -> int:
    from streaming import broker

    if args.brokers is not None and args.action != "up":
        raise InputError("--brokers goes with `kafka up` (down and status find what runs)")
    if args.action == "up":
        say(broker.up(cfg, log=say, brokers=args.brokers))
        if args.brokers is not None and args.brokers != cfg.kafka.local_brokers:
            say(f"(clients given only {cfg.kafka.bootstrap_servers} need that node to start; set "
                f"kafka.local_brokers: {args.brokers} in the config so they are given every node)")
    elif args.action == "down":
        broker.down(cfg, log=say)
    else:
        say(broker.status(cfg))
    return 0


def cmd_contracts(cfg: Config, args) -> int:
    if args.write:
        from streaming.topic_schemas import write_all

        write_all(log=say)
        return 0
    if args.topic:
        from streaming.topic_schemas import render, topic_schema

        say(render(topic_schema(args.topic)).rstrip("\n"))
        return 0
    from streaming.contracts import event_json_schema

    say(json.dumps(event_json_schema(), indent=2, ensure_ascii=False))
    return 0


def cmd_simulate(cfg: Config, args) -> int:
    if args.transfer_results:
        from o2p.reconcile import simulate_results

        if not args.out:
            raise InputError("--transfer-results needs --out FILE (the results file to write)")
        lines = simulate_results(cfg, args.transfer_results, fail_share=args.fail_share, seed=args.seed)
        Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
        say(f"{len(lines)} transfer results of {args.transfer_results} written to {args.out}; "
            f"read them back with o2p payouts reconcile {args.out}")
        return 0
    from streaming.producer import EventPublisher, encode
    from streaming.simulate import build_world, messages, write_reference

    world = build_world(args.month, orders=args.orders, promoters=args.promoters, buyers=args.buyers,
                        clicks_per_order=args.clicks_per_order, malformed_share=args.malformed_share,
                        duplicate_share=args.duplicate_share, late_share=args.late_share, seed=args.seed)
    write_reference(world, cfg.reference_path)
    say(f"reference data written to {cfg.reference_path}")
    if args.out:
        with open(args.out, "wb") as fh:
            for e in world.events:
                fh.write(encode(e) + b"\n")
        say(f"{len(world.events)} events written to {args.out}")
        return 0
    total = len(world.events) + len(world.malformed)
    started = last = time.monotonic()
    with EventPublisher(cfg) as pub:
        for i, (table, msg) in enumerate(messages(world), start=1):
            if table == "event":    # a valid event: the publisher routes it by its type
                pub.publish(msg)
            else:                   # a malformed message, for the topic of that landing table
                pub.publish_raw(getattr(cfg.kafka.topics, table), msg)
            if time.monotonic() - last >= 10:
                last = time.monotonic()
                say(f"  published {i} of {total} ({i / (last - started):.0f}/s)")
    say(f"published {len(world.events)} events and {len(world.malformed)} malformed messages for {args.month}")
    return 0


def cmd_publish(cfg: Config, args) -> int:
    from streaming.producer import publish_file

    publish_file(cfg, args.file, topic=args.topic, log=say, validate=not args.no_validate)
    return 0


def cmd_capture(cfg: Config, args) -> int:
    import logging

    from streaming.capture.consumer import Capture

    if args.status:
        from streaming.health import capture_health, format_table, log_offsets

        offsets = log_offsets(cfg)
        if offsets is None:
            say(f"(broker {cfg.kafka.bootstrap_servers} not reachable: lag unknown)")
        say(format_table(capture_health(cfg, offsets)))
        from streaming.deadletters import counts

        by = counts(cfg)
        if by["source"]:
            say("dead letters by source: " + ", ".join(f"{k} {v}" for k, v in sorted(by["source"].items())))
            say("dead letters by reason: " + ", ".join(f"{k} {v}" for k, v in by["reason"].most_common()))
            say("(o2p deadletters list --reason CODE; export, fix and replay them: o2p deadletters --help)")
        return 0
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    o2p_log = logging.getLogger("o2p")     # ours only: the root logger would echo every library's
    o2p_log.addHandler(handler)
    o2p_log.setLevel(logging.INFO if args.verbose else logging.WARNING)
    cap = Capture(cfg, echo=say)
    started = time.monotonic()
    summary = cap.run(until_idle=args.until_idle, max_seconds=args.max_seconds)
    say(f"{cap.progress_line()} in {time.monotonic() - started:.1f} s")
    for tp, s in summary.items():
        say(f"  {tp}: next offset {s['next_offset']}, consumed {s['consumed']}, landed {s['landed']}, dead letters {s['dead_lettered']}")
    return 0


def cmd_deadletters(cfg: Config, args) -> int:
    from streaming import deadletters as dl

    if args.action == "show":
        d = dl.find(cfg, args.dead_letter)
        rec = dl.export_record(d)
        say(f"dead letter {d['dead_letter']} (table {d['table']}), captured {d['capture_date']}")
        say(f"  reason ({d['reason_code']}): {d['reason']}")
        say(f"  source {d['source']}, event_id {d['event_id'] or '-'}, key {rec.get('key', rec.get('key_base64'))!r}")
        say("  raw: " + (rec["raw"] if "raw" in rec and rec["raw"] is not None else f"(base64) {rec.get('raw_base64')}"))
        for r in d["replays"]:
            what = "replayed" if r.get("outcome", "replayed") == "replayed" else "resolved (its event_id had landed)"
            say(f"  {what} by {r['replayed_by']} at {r['replayed_at']} as event_id {r['event_id']} "
                f"(from {r['file']}:{r['line']})")
        return 0
    if args.action == "replay":
        from o2p.identity import who
        from o2p.layout import deadletter_replays_file

        got = dl.replay(cfg, Path(args.file), who(), log=say)
        say(f"{args.file}: {got['lines']} fixed event(s): {got['sent']} replayed, {got['skipped']} skipped "
            f"(recorded in {deadletter_replays_file(cfg.home_path)}); run capture to land them")
        return 0
    rows = dl.read(cfg, reason=args.reason, topic=args.topic, source=args.source, date=args.date)
    if args.action == "export":
        text = dl.export_lines(rows)
        if args.out and args.out != "-":
            Path(args.out).write_text(text, encoding="utf-8")
            say(f"{len(rows)} dead letters written to {args.out} (JSON lines; fix `event`, then "
                f"o2p deadletters replay {args.out})")
        else:
            sys.stdout.write(text)
        return 0
    if not rows:
        say("no dead letters" + (" match" if any((args.reason, args.topic, args.source, args.date)) else ""))
        return 0
    say(f"{'dead letter':36} {'captured':10} {'source':10} {'event_id':20} {'reason code':26} {'replayed':8}  reason")
    for d in rows:
        say(f"{d['dead_letter'][:36]:36} {d['capture_date']:10} {d['source']:10} {(d['event_id'] or '-')[:20]:20} "
            f"{d['reason_code']:26} {('yes' if d['replays'] else 'no'):8}  {d['reason'][:120]}")
    from collections import Counter

    by_reason = Counter(d["reason_code"] for d in rows)
    say(f"{len(rows)} dead letter(s): " + ", ".join(f"{k} {v}" for k, v in by_reason.most_common()))
    return 0


def _landed_days(cfg: Config) -> list[str]:
    from o2p.layout import landed_days

    return landed_days(cfg.landing_path)


def cmd_run(cfg: Config, args) -> int:
    from o2p.reference import load_reference

    load_reference(cfg.reference_path, encoding=cfg.reference_encoding)  # refuse bad reference data before anything runs
    days = _landed_days(cfg)
    if not days:
        say(f"nothing landed under {cfg.landing_path}; run `o2p capture --until-idle` first")
        return 0
    with exclusive(cfg.home_path / "locks" / "pipeline.lock", "o2p run"):
        _run(cfg, days)
    return 0


def _run(cfg: Config, days: list[str]) -> None:
    """The plan the daemon follows (pipelines/lib/plan.py), executed here in order, in-process."""
    from o2p.timeutil import shanghai_date
    from pipelines.lib.partitions import START
    from pipelines.lib.plan import pipeline_plan

    t0 = time.monotonic()
    steps, skipped = pipeline_plan(days, shanghai_date(time.time_ns() // 1000).isoformat())
    if skipped:
        print(f"o2p run: skipping {len(skipped)} landed day(s) outside the daily partitions ({START} to tomorrow): "
              f"{', '.join(skipped[:5])}{' …' if len(skipped) > 5 else ''}; events from the future are dead "
              "letters since capture checks quality.max_future_seconds; move these folders out of the "
              "landing zone once you have looked at them", file=sys.stderr, flush=True)
    if not steps:
        say("no landed day to run")
        return
    if any(s.job == "attribution_job" for s in steps):
        _start_spark_early(cfg)
    what = {"reference_job": "reference data", "attribution_job": "attribution (Spark) for",
            "commission_job": "commission (dbt) for"}
    for step in steps:
        where = (f" {step.partition_range[0]} … {step.partition_range[1]}" if step.partition_range
                 else f" {step.partition}" if step.partition else "")
        say(f"{what[step.job]}{where} …")
        _execute(cfg, step.job, partition=step.partition, partition_range=step.partition_range, bi=step.bi)
    _say_docs(cfg)
    first_month = next(s.partition for s in steps if s.job == "commission_job")
    say(f"done in {time.monotonic() - t0:.0f} s; release a period with `o2p payouts release --period {first_month}`")


def _start_spark_early(cfg: Config) -> None:
    """Start the Spark session in a background thread while the first runs import Dagster, dbt
    and Great Expectations and validate the reference data (the JVM's start-up, several seconds,
    overlaps them); the attribution asset then finds it started (pipelines/lib/spark.py waits
    for it under its lock). A failure here is left to the asset, which starts it again and
    reports the error in its run."""
    import threading

    def start():
        from pipelines.lib.spark import get_spark

        try:
            get_spark(cfg)
        except Exception:  # noqa: BLE001 - the asset's own start reports it
            pass

    threading.Thread(target=start, name="o2p-spark-start", daemon=True).start()


def release_period(cfg: Config, period: str) -> Path:
    from o2p.periods import check_order
    from o2p.registry import Registry
    from o2p.timeutil import parse_period

    try:
        parse_period(period)
    except ValueError as exc:
        raise InputError(f"--period: {exc}") from None
    registry = Registry(cfg.registry)
    existing = registry.released_folder(period)
    if existing:
        return existing
    with exclusive(cfg.home_path / "locks" / "pipeline.lock", f"o2p payouts release --period {period}"):
        existing = registry.released_folder(period)   # released while we waited for nothing: same batch
        if existing:
            return existing
        check_order(cfg, registry, period)   # refuse out-of-order periods before any run
        _execute(cfg, "reference_job")
        _execute(cfg, "release_job", partition=period)
    folder = registry.released_folder(period)
    if folder is None:
        raise O2PError(f"release of {period} finished without a batch")
    return folder


def cmd_payouts(cfg: Config, args) -> int:
    from o2p.registry import Registry

    if args.action == "release":
        folder = release_period(cfg, args.period)
        from o2p.reports import anomalies

        found = anomalies(cfg, args.period)
        if found:
            print(f"{len(found)} anomalies reported for {args.period} (not paid, not lost): "
                  f"o2p anomalies --period {args.period}", file=sys.stderr)
        _say_docs(cfg)
        say(str(folder))
        return 0
    if args.action == "statement":
        from o2p.reports import promoter_statement

        say(promoter_statement(cfg, args.promoter, args.period))
        return 0
    if args.action == "list":
        rows = Registry(cfg.registry).released()
        if not rows:
            say("no period released yet")
        from o2p.approval import needs_approval
        from o2p.money import fen_to_cny
        from o2p.registry import RETURNED_STATES

        reg = Registry(cfg.registry)
        approved = reg.approvals()
        say(f"{'period':8} {'status':10} {'rows':>5} {'gross CNY':>12} {'tax CNY':>10} {'net CNY':>12}  "
            f"{'released by':14} {'approval':20} {'confirmed':>16} {'returned':>16} {'open':>16}  batch")
        for b in rows:
            if b["period"] in approved:
                ap = f"by {approved[b['period']]['approved_by']}"
            elif b["status"] == "released" and b["folder"] and needs_approval(Path(b["folder"])):
                ap = "awaiting approval"
            else:
                ap = "not required"
            bills = reg.bills(period=b["period"]).values()
            money = {k: [0, 0] for k in ("confirmed", "returned", "open")}
            for bill in bills:
                k = ("confirmed" if bill["state"] == "SUCCESS" else
                     "returned" if bill["state"] in RETURNED_STATES else "open")
                money[k][0] += 1
                money[k][1] += bill["net_fen"]
            cell = {k: f"{n} / {fen_to_cny(v)}" for k, (n, v) in money.items()}
            say(f"{b['period']:8} {b['status']:10} {b['row_count'] or 0:>5} {fen_to_cny(b['gross_fen'] or 0):>12} "
                f"{fen_to_cny(b['tax_fen'] or 0):>10} {fen_to_cny(b['net_fen'] or 0):>12}  "
                f"{(b['released_by'] or '-')[:14]:14} {ap[:20]:20} {cell['confirmed']:>16} {cell['returned']:>16} "
                f"{cell['open']:>16}  {b['folder'] or b['batch_id']}")
        say("(bills: count / net CNY; open = sent, no final result read back yet: o2p payouts reconcile FILE)")
        return 0
    if args.action == "approve":
        from o2p.approval import approve
        from o2p.identity import who
        from o2p.release import TRANSFERS

        folder, rec, fresh = approve(cfg, args.period, who())
        if not fresh:
            print(f"o2p: {args.period} was already approved by {rec['approved_by']} at {rec['approved_at']}",
                  file=sys.stderr)
        say(str(folder / TRANSFERS))
        return 0
    if args.action == "reconcile":
        from o2p.identity import who
        from o2p.reconcile import reconcile

        path = Path(args.file)
        if not path.is_file():
            raise InputError(f"{path}: no such file")
        got = reconcile(cfg, path, who())
        say(f"{path}: {got['lines']} lines, {got['new']} new, {got['changed']} bill(s) changed state "
            f"(sha256 {got['sha256'][:16]}…)")
        if got["returned"]:
            say(f"{len(got['returned'])} returned transfer(s) (FAIL, CANCELLED) will come back into their promoters' "
                "balances in the next period released")
        return 0
    if args.action == "abandon":
        from o2p.identity import who

        reg = Registry(cfg.registry)
        b = reg.batch(args.period)
        if not b or b["status"] != "releasing":
            raise InputError(f"period {args.period} has no release in progress to abandon"
                             + (f" (it is {b['status']})" if b else ""))
        reg.abandon(args.period, claimed_by=b["claimed_by"], by=who())
        say(f"abandoned the claim on {args.period} by {b['claimed_by']} (since {b['claimed_at']}); "
            "nothing had been released")
        return 0
    if args.action == "verify":
        from o2p.release import verify

        problems = verify(Path(args.folder), Registry(cfg.registry))
        if problems:
            for p in problems:
                say(f"FAIL {p}")
            return 1
        from o2p.approval import needs_approval

        reg = Registry(cfg.registry)
        man = json.loads((Path(args.folder) / "manifest.json").read_bytes())
        state = ""
        if needs_approval(Path(args.folder)):
            rec = reg.approval(man.get("period", ""))
            state = (f"; approved by {rec['approved_by']} at {rec['approved_at']}" if rec
                     else "; awaiting approval (no transfer instructions yet)")
        say(f"OK {args.folder}: every hash and total matches the manifest and the registry{state}")
        return 0
    raise InputError(f"unknown payouts action {args.action}")


def cmd_anomalies(cfg: Config, args) -> int:
    from o2p.reports import anomalies, anomalies_csv
    from o2p.timeutil import parse_period

    try:
        parse_period(args.period)
    except ValueError as exc:
        raise InputError(f"--period: {exc}") from None
    rows = anomalies(cfg, args.period)
    if args.csv:
        Path(args.csv).write_text(anomalies_csv(rows), encoding="utf-8")
        say(f"{len(rows)} anomalies of {args.period} written to {args.csv}")
        return 0
    if not rows:
        say(f"no anomalies recorded for {args.period} (they are computed by its commission run)")
        return 0
    say(f"{'kind':22} {'order':12} {'line':6} {'promoter':10} {'fen':>8}  detail")
    for r in rows:
        say(f"{r['kind']:22} {r['order_id'] or '':12} {r['line_id'] or '':6} {r['promoter_id'] or '':10} "
            f"{'' if r['amount_fen'] is None else r['amount_fen']:>8}  {r['detail']}"
            + (f" (event {r['event_id']})" if r["event_id"] else "") + (f" (refund {r['refund_id']})" if r["refund_id"] else ""))
    return 0


def cmd_attribution(cfg: Config, args) -> int:
    from o2p import decisions

    if args.action == "why":
        traced = decisions.read(cfg, [args.order]).get(args.order)
        if not traced:
            off = "" if cfg.attribution.decision_trace else (
                f"; attribution.decision_trace is false in {cfg.source}, so none is written")
            raise InputError(f"order {args.order} has no attribution decision trace: no order_paid of it has been "
                             "attributed (o2p run), or its day was attributed without the trace (before it existed, "
                             f"or with attribution.decision_trace false: attribute that day again){off}")
        say(decisions.explain(traced))
        return 0
    raise InputError(f"unknown attribution action {args.action}")


def cmd_report(cfg: Config, args) -> int:
    from o2p import monthly_report
    from o2p.timeutil import parse_period

    try:
        parse_period(args.period)
    except ValueError as exc:
        raise InputError(f"--period: {exc}") from None
    say(str(monthly_report.write(cfg, args.period, out=Path(args.out) if args.out else None)))
    return 0


def cmd_docs(cfg: Config, args) -> int:
    from o2p import docs

    page = docs.build(cfg, log=lambda m: print(m, file=sys.stderr))
    if not args.serve:
        say(str(page))
        return 0
    docs.serve(page.parent, host=args.host, port=args.port)
    return 0


def cmd_demo(cfg: Config, args) -> int:
    from o2p.timeutil import next_period, period_end_us
    from streaming import broker

    started = broker.is_local(cfg) and "running" not in broker.status(cfg)
    say(f"1/5 broker: {broker.up(cfg, log=say)}")
    _start_spark_early(cfg)   # its JVM starts while the events are simulated and captured
    try:
        say(f"2/5 simulate {args.month}")
        cmd_simulate(cfg, build_parser().parse_args(
            ["simulate", "--month", args.month, "--orders", str(args.orders), "--seed", str(args.seed)]))
        say("3/5 capture until idle")
        cmd_capture(cfg, build_parser().parse_args(["capture", "--until-idle"]))
        say("4/5 run every asset")
        cmd_run(cfg, args)
        days = _landed_days(cfg)
        period, last = days[0][:7], next_period(args.month)
        say("5/5 release every period in order; after each, its transfer results read back "
            "(returned transfers are paid again by the next release)")
        folders = []
        now_us = time.time_ns() // 1000
        while period <= last and period_end_us(period) <= now_us:   # a month is released once over
            folder = release_period(cfg, period)
            folders.append(folder)
            say(f"  {period}: {folder}")
            _demo_after_release(cfg, period, args.seed)
            period = next_period(period)
        cmd_payouts(cfg, argparse.Namespace(action="list"))
        if folders:
            say(f"\npayout files: {folders[-2] if len(folders) > 1 else folders[-1]}")
        else:
            say(f"\nnothing released: {args.month} has not ended yet (run the demo with an earlier --month)")
    finally:
        if started and not args.keep_broker:
            broker.down(cfg, log=say)
    return 0


def _demo_after_release(cfg: Config, period: str, seed: int) -> None:
    """Approval (when configured, by a second person) and simulated transfer results, reconciled."""
    from o2p.identity import who
    from o2p.reconcile import reconcile, simulate_results
    from o2p.registry import Registry

    if cfg.payout.require_approval:
        from o2p.approval import approve

        approver = f"{who()}-approver"
        approve(cfg, period, approver)
        say(f"    approved by {approver} (a second person): transfer instructions written")
    if not Registry(cfg.registry).bills(period=period):
        return
    results = cfg.home_path / "transfer_results" / f"{period}.jsonl"
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text("\n".join(simulate_results(cfg, period, seed=seed)) + "\n", encoding="utf-8")
    got = reconcile(cfg, results, who())
    say(f"    transfer results {results.name}: {got['new']} lines, {len(got['returned'])} returned "
        "(FAIL / CANCELLED: back into the balance next period)")


def cmd_serve(cfg: Config, args) -> int:
    """The Dagster webserver and daemon (`dagster dev`) on this home's instance: the runs of the
    CLI, the sensors and schedules, the asset graph, with this config."""
    import shutil

    from pipelines.lib.instance import dagster_home

    home, note = dagster_home(cfg)
    if note:
        print(f"o2p: {note}", file=sys.stderr, flush=True)
    from pipelines.lib.dbt_manifest import prepare

    if prepare():
        say("o2p serve: the dbt models changed: manifest parsed again")
    repo = Path(__file__).resolve().parent.parent
    exe = shutil.which("dagster", path=os.pathsep.join([str(Path(sys.executable).parent),
                                                        os.environ.get("PATH", "")]))
    if exe is None:
        raise O2PError("the dagster command is not installed beside this Python: run ./dev serve (it installs it)")
    env = {**os.environ, "DAGSTER_HOME": str(home), "O2P_HOME": str(cfg.home_path),
           "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")}
    if cfg.source != "<defaults>":
        env["O2P_CONFIG"] = cfg.source
    say(f"o2p serve: Dagster UI on http://{args.host}:{args.port} (instance {home}, home {cfg.home_path})")
    os.chdir(repo)
    os.execve(exe, [exe, "dev", "-w", str(repo / "workspace.yaml"), "-h", args.host, "-p", str(args.port)], env)
    return 0   # not reached


def _month_before_last() -> str:
    """So that the demo's month and the one after it have both ended (they can be released)."""
    from o2p.timeutil import previous_period, shanghai_date

    return previous_period(previous_period(shanghai_date(time.time_ns() // 1000).strftime("%Y-%m")))


def _say_docs(cfg: Config, file=None) -> None:
    from expectations.runner import docs_index

    index = docs_index(cfg.home_path)
    if index.exists():
        print(f"quality gates, Data Docs: {index}", file=file or sys.stdout, flush=True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="o2p",
        description="Order-to-payout pipeline: Kafka capture, Spark attribution, dbt commission, "
                    "gated monthly payout releases. State lives under $O2P_HOME (default ./.o2p).",
        epilog="Exit codes: 0 success, 2 bad input or config, 3 a quality gate failed, 1 anything else.",
    )
    p.add_argument("--config", help="YAML config (default: $O2P_CONFIG, else the shipped defaults)")
    p.add_argument("--home", help="state folder (default: $O2P_HOME, else ./.o2p)")
    p.add_argument("--as", dest="as_user", metavar="NAME",
                   help="who runs this command, recorded with every change of money (default: $O2P_USER, "
                        "else the operating-system user)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    k = sub.add_parser("kafka", help="start, stop or inspect the local KRaft broker, or a local cluster of several",
                       description="up: start the local broker (kafka.local_brokers nodes, each a broker and a "
                                   "controller, on loopback) if it is not running, start any node of a cluster "
                                   "that is not, and create the topics; down: stop every node of this home; "
                                   "status: each node's state.")
    k.add_argument("action", choices=["up", "down", "status"])
    k.add_argument("--brokers", type=int, choices=range(1, 10), metavar="N",
                   help="with up: start N nodes (3: topics with replication factor 3 and min.insync.replicas 2) "
                        "instead of kafka.local_brokers")
    k.set_defaults(fn=cmd_kafka)

    c = sub.add_parser("contracts", help="print the JSON Schema of every event, or of one topic; --write the "
                                         "per-topic schemas (streaming/schemas/v1/)")
    c.add_argument("--topic", choices=["clicks", "orders", "refunds"],
                   help="print the JSON Schema (2020-12) of this topic's messages")
    c.add_argument("--write", action="store_true",
                   help="write streaming/schemas/v1/<topic>.schema.json from the contracts")
    c.set_defaults(fn=cmd_contracts)

    s = sub.add_parser("simulate", help="write synthetic reference CSVs and publish a month of synthetic traffic")
    s.add_argument("--month", default="2026-10", help="YYYY-MM of the orders (default 2026-10)")
    s.add_argument("--orders", type=int, default=400,
                   help="orders in the month (default 400); about 4 events per order, so 250000 ≈ 1M events")
    s.add_argument("--promoters", type=int, default=40, help="promoters (default 40)")
    s.add_argument("--buyers", type=int, default=300, help="buyers (default 300)")
    s.add_argument("--clicks-per-order", type=float, default=3.0, help="mean clicks before an order (default 3)")
    s.add_argument("--malformed-share", type=float, default=0.01, help="share of malformed messages (default 0.01)")
    s.add_argument("--duplicate-share", type=float, default=0.03,
                   help="share of events a producer publishes twice, same event_id (default 0.03)")
    s.add_argument("--late-share", type=float, default=0.01,
                   help="share of events published after everything newer (default 0.01)")
    s.add_argument("--seed", type=int, default=7)
    s.add_argument("--out", help="write the events to this JSON-lines file instead of publishing")
    s.add_argument("--transfer-results", metavar="YYYY-MM",
                   help="instead: write WeChat Pay transfer-bill results for the bills of this released period to --out")
    s.add_argument("--fail-share", type=float, default=0.2,
                   help="with --transfer-results: share of bills that FAIL or are CANCELLED (default 0.2)")
    s.set_defaults(fn=cmd_simulate)

    pb = sub.add_parser("publish", help="publish a JSON-lines file, one event per line, to its topic")
    pb.add_argument("file")
    pb.add_argument("--topic", help="send every line as raw bytes to this topic (no routing, no validation)")
    pb.add_argument("--no-validate", action="store_true",
                    help="do not check the events against the contract before sending (capture still does)")
    pb.set_defaults(fn=cmd_publish)

    cp = sub.add_parser("capture", help="consume the event topics into the Parquet landing zone")
    cp.add_argument("--until-idle", action="store_true", help="exit 0 once every partition is caught up")
    cp.add_argument("--status", action="store_true",
                    help="print each partition's landed offset, lag, counts and owner, then exit")
    cp.add_argument("--max-seconds", type=float, help="stop after this many seconds")
    cp.add_argument("-v", "--verbose", action="store_true", help="log every landed batch")
    cp.set_defaults(fn=cmd_capture)

    dlp = sub.add_parser("deadletters", help="list, show, export (for the producer team) and replay fixed dead letters")
    dsub = dlp.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, text in (("list", "the landed dead letters, with reason code, source and event_id"),
                       ("export", "the dead letters as JSON lines (raw message, reason, `event` to fix)")):
        a = dsub.add_parser(name, help=text)
        a.add_argument("--reason", help="a reason code (e.g. cross_field_rule, unknown_field, not_json)")
        a.add_argument("--topic", help="a topic name or its landing table (clicks, orders, refunds)")
        a.add_argument("--source", choices=["storefront", "bot", "unknown"], help="the producer (unknown: not an event)")
        a.add_argument("--date", metavar="YYYY-MM-DD", help="capture date (Asia/Shanghai)")
        if name == "export":
            a.add_argument("--out", help="file to write (default: standard output)")
    sh = dsub.add_parser("show", help="one dead letter in full, and its replays")
    sh.add_argument("dead_letter", help="topic/partition/offset, as `list` prints it")
    rp = dsub.add_parser("replay", help="publish the fixed `event` of each line of an export file, once "
                                        "(same event_id; an event_id already landed or replayed is skipped)")
    rp.add_argument("file")
    dlp.set_defaults(fn=cmd_deadletters)

    r = sub.add_parser("run", help="materialize every asset for every partition that has data (not the release)")
    r.set_defaults(fn=cmd_run)

    py = sub.add_parser("payouts", help="release, list, verify and explain payout batches")
    psub = py.add_subparsers(dest="action", required=True, metavar="ACTION")
    rel = psub.add_parser("release", help="release a period (prints the batch folder)")
    rel.add_argument("--period", required=True, help="YYYY-MM")
    psub.add_parser("list", help="released periods with their totals")
    st = psub.add_parser("statement", help="one promoter's released money, each fen from click to payout")
    st.add_argument("--promoter", required=True, help="promoter_id")
    st.add_argument("--period", help="YYYY-MM (default: every released period)")
    rc = psub.add_parser("reconcile", help="read WeChat Pay transfer-bill results (JSON lines) back: confirmed, "
                                           "returned (FAIL, CANCELLED: paid again next period) or open")
    rc.add_argument("file", help="JSON lines: out_bill_no, state, transfer_amount, update_time (RFC 3339)")
    ap = psub.add_parser("approve", help="approve a released period (payout.require_approval): a second person; "
                                         "writes its transfer instructions")
    ap.add_argument("--period", required=True, help="YYYY-MM")
    ab = psub.add_parser("abandon", help="clear the claim of a release that died on another host "
                                         "(never touches a released period)")
    ab.add_argument("--period", required=True, help="YYYY-MM")
    ver = psub.add_parser("verify", help="recompute every hash and total of a batch folder")
    ver.add_argument("folder")
    py.set_defaults(fn=cmd_payouts)

    at = sub.add_parser("attribution", help="why an order went to its promoter: the attribution decision trace",
                        description="Read the attribution decision trace Spark writes beside the attribution "
                                    "($O2P_HOME/warehouse/attribution_decisions/): every click of the buyer in the "
                                    "order's lookback window, valid or not, its promoter, and the rule (rulebook §4) "
                                    "it won or lost by. Reads Parquet only: it works while a run holds the warehouse.")
    atsub = at.add_subparsers(dest="action", required=True, metavar="ACTION")
    why = atsub.add_parser("why", help="one order's decision: every candidate click and why it won or lost",
                           description="Print one order's attribution decision (its counted order_paid: the "
                                       "earliest): the winning click and its reason, every other click of the buyer "
                                       "in the window with the reason it lost (share_token_precedence, "
                                       "later_click_won, tie_broken_by_event_id, invalid_click, self_purchase, "
                                       "locked_to_other_promoter, no_active_lock), and a legend of those reasons.",
                           epilog="Example: o2p attribution why --order O1042")
    why.add_argument("--order", required=True, metavar="ORDER_ID", help="the storefront's order_id")
    at.set_defaults(fn=cmd_attribution)

    an = sub.add_parser("anomalies", help="what a period reports instead of paying: duplicate orders, conflicting event ids, "
                                          "over-refunds, held refunds, unknown promoters")
    an.add_argument("--period", required=True, help="YYYY-MM")
    an.add_argument("--csv", metavar="FILE", help="write them as CSV to FILE instead of printing")
    an.set_defaults(fn=cmd_anomalies)

    rp = sub.add_parser("report", help="one self-contained HTML page of a period for people: GMV, orders and "
                                        "commission by day, estimated vs settled, top promoters, carried, "
                                        "anomalies, returned transfers (prints its path)")
    rp.add_argument("--period", required=True, help="YYYY-MM")
    rp.add_argument("--out", metavar="FILE", help="where to write it (default $O2P_HOME/reports/PERIOD.html)")
    rp.set_defaults(fn=cmd_report)

    dc = sub.add_parser("docs", help="dbt's docs of the models (descriptions, columns, lineage, exposures) as "
                                     "one static page under $O2P_HOME/docs (prints its path), or --serve it")
    dc.add_argument("--serve", action="store_true", help="serve the page over HTTP until Ctrl-C")
    dc.add_argument("--host", default="127.0.0.1", help="address to listen on with --serve (default 127.0.0.1)")
    dc.add_argument("--port", type=int, default=8580, help="port with --serve (default 8580)")
    dc.set_defaults(fn=cmd_docs)

    sv = sub.add_parser("serve", help="the Dagster UI and daemon on this home's instance (the CLI's runs, "
                                      "sensors, schedules); telemetry off")
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    sv.add_argument("--port", type=int, default=3000, help="port (default 3000)")
    sv.set_defaults(fn=cmd_serve)

    d = sub.add_parser("demo", help="all of it on synthetic data: broker, simulate, capture, run, release")
    d.add_argument("--month", default=_month_before_last(),
                   help="YYYY-MM of the simulated orders (default: the month before last, "
                        f"{_month_before_last()}); it and the month after are released")
    d.add_argument("--orders", type=int, default=400)
    d.add_argument("--seed", type=int, default=7)
    d.add_argument("--keep-broker", action="store_true", help="leave the local broker running")
    d.set_defaults(fn=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    import warnings

    # Dagster's beta/preview notices about our own (pinned) definitions are for developers, not
    # for operators running a command; `dagster dev` and the tests still show them.
    warnings.filterwarnings("ignore", module=r"dagster(\.|$)")
    warnings.filterwarnings("ignore", module=r"pipelines\.assets")
    args = build_parser().parse_args(argv)
    if args.fn is not cmd_capture or args.status:
        restore_defaults()   # the default handlers; a stop signal recorded during start-up is re-raised
    if args.as_user is not None:
        if not args.as_user.strip():
            print("o2p: --as: a name is required (who runs this command)", file=sys.stderr)
            return 2
        os.environ["O2P_USER"] = args.as_user.strip()   # this command and the Dagster runs it starts
    global _INVOCATION
    _INVOCATION = " ".join(["o2p", *(sys.argv[1:] if argv is None else argv)])
    cfg = None
    try:
        cfg = load_config(args.config, home=args.home)
        return args.fn(cfg, args) or 0
    except BrokenPipeError:
        # the reader of our output went away (`o2p capture --status | head`): no traceback, nothing
        # more to write to that pipe, and the exit status of a process killed by SIGPIPE (the
        # command may not have finished: a script must not read that as success)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        _fail("interrupted (Ctrl-C); what was written before is intact", cfg)
        return 130
    except O2PError as exc:
        if isinstance(exc, GateFailed):
            _say_docs(cfg, file=sys.stderr)
        _fail(str(exc.args[0]) if exc.args else type(exc).__name__, cfg,
              detail=exc.args[1] if len(exc.args) > 1 else None,
              traceback_of=exc if exc.exit_code == 1 else None)
        return exc.exit_code
    except Exception as exc:   # noqa: BLE001 - every failure ends in one o2p: line
        explained = operator_message(exc, where=cfg.home_path if cfg is not None else None)
        text, code = explained or (f"internal error ({type(exc).__name__}: {exc}); please report it "
                                   "with the log file named here", 1)
        _fail(text, cfg, traceback_of=exc)
        return code


def _fail(message: str, cfg: Config | None, *, detail: str | None = None, traceback_of=None) -> None:
    """Print a failure so that the last line of stderr is one `o2p:` sentence: the lines of a
    long message (a list of bad rows, failed checks) come first, its first line last; a
    traceback goes to $O2P_HOME/logs/, named in that line (or above it, if the log cannot be
    written: a full disk)."""
    import traceback

    head, *rest = message.strip().splitlines() or ["failed"]
    rest = [line for line in rest if line.strip()]
    log_note = ""
    if traceback_of is not None or detail:
        text = (detail or "") + ("".join(traceback.format_exception(traceback_of)) if traceback_of else "")
        path = _write_log(cfg, text)
        if path is not None:
            log_note = f" (details: {path})"
        else:
            print(text, file=sys.stderr)
            log_note = " (details above: the log could not be written)"
    for line in rest:
        print(line if line.startswith(" ") else f"  {line}", file=sys.stderr)
    tail = " (listed above)" if rest else ""
    print(f"o2p: {head.rstrip(':')}{tail}{log_note}", file=sys.stderr, flush=True)


def _write_log(cfg: Config | None, text: str) -> Path | None:
    home = cfg.home_path if cfg is not None else Path(os.environ.get("O2P_HOME") or ".o2p").resolve()
    try:
        d = home / "logs"
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"error-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.log"
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        return path
    except OSError:
        return None


if __name__ == "__main__":
    sys.exit(main())
