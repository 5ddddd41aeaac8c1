"""Faults an operator meets, on the real broker (issue #11): a full disk during capture, a broker
that is down when capture starts (and comes back, or does not), a message larger than the broker
accepts, and a reader that closes our output. Each ends with one `o2p:` line on stderr that
names the cause and what to do, and loses nothing."""

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from o2p.config import load_config
from streaming import broker as kb
from streaming.health import capture_health
from tests.conftest import REPO
from tests.integration.test_capture import every_offset_once, landed, make_cfg

pytestmark = pytest.mark.integration
SALT = {"O2P_IP_SALT": "test-salt"}


def o2p(cfg_file, home, *args, timeout=300):
    return subprocess.run([sys.executable, "-m", "o2p.cli", "--config", str(cfg_file), "--home", str(home), *args],
                          cwd=REPO, env={**os.environ, **SALT}, capture_output=True, text=True, timeout=timeout)


def last_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def publish_clicks(cfg, n: int, prefix: str) -> None:
    from streaming.producer import EventPublisher

    with EventPublisher(cfg) as pub:
        for i in range(n):
            pub.publish({"event_id": f"{prefix}-{i}-{uuid.uuid4().hex}", "event_type": "click",
                         "occurred_at": "2026-10-02T10:00:00+08:00", "source": "bot", "schema_version": 1,
                         "promoter_id": f"P{i % 97}", "share_id": uuid.uuid4().hex, "buyer_id": uuid.uuid4().hex,
                         "device_id": uuid.uuid4().hex, "sku_id": "SKU1", "channel": "group"})


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs (root only: CI runs as root), unmounted afterwards."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        if os.environ.get("CI"):
            pytest.fail("the disk-full test needs root to mount a tmpfs, and CI runs as root")
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "small disk"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_during_capture_is_one_line_and_loses_nothing(broker, tmp_path, small_disk):
    cfg0, cfg_file = make_cfg(broker, tmp_path)
    home = small_disk / "home"
    home.mkdir()
    cfg = load_config(cfg_file, home=home)
    # leave ~32 KiB free: the salt, state files and the first small files fit, a real batch does not
    filler = small_disk / "filler"
    free = shutil.disk_usage(small_disk).free
    filler.write_bytes(b"\0" * (free - 32 * 1024))
    publish_clicks(cfg, 3000, "full")

    for attempt in range(2):   # the first run, and a re-run on a disk that is still full
        proc = o2p(cfg_file, home, "capture", "--until-idle")
        assert proc.returncode == 1, (attempt, proc.stdout, proc.stderr)
        line = last_line(proc.stderr)
        assert line.startswith("o2p: capture stopped: no space left on the device "), (attempt, proc.stderr)
        assert f"{home}" in line, line
        assert "free space there (df -h) and run the command again" in line
        assert "BrokenPipe" not in proc.stderr and "rebalance callback" not in proc.stderr, proc.stderr

    filler.unlink()   # space again: the next run lands every offset exactly once
    proc = o2p(cfg_file, home, "capture", "--until-idle")
    assert proc.returncode == 0, proc.stderr
    offsets, event_ids, _ = landed(cfg)
    assert offsets == every_offset_once(cfg)
    assert len(event_ids) == 3000 and set(event_ids.values()) == {1}


@pytest.fixture
def own_broker(tmp_path):
    """A broker of this test alone, to stop and start."""
    with kb.scratch_broker(tmp_path / "own broker", log=lambda *_: None) as cfg:
        yield cfg


def test_capture_waits_for_a_broker_that_comes_back_and_gives_up_on_one_that_does_not(own_broker, tmp_path):
    cfg, cfg_file = make_cfg(own_broker, tmp_path, capture_yaml="  broker_unreachable_seconds: 12\n")
    publish_clicks(cfg, 500, "back")
    kb.down(own_broker, log=lambda *_: None)

    # down for good: retried with a line now and then, then one o2p: line after the configured time
    started = time.monotonic()
    proc = o2p(cfg_file, cfg.home_path, "capture", "--until-idle", timeout=120)
    took = time.monotonic() - started
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "unreachable for" in proc.stdout and "retrying, giving up after 12 s" in proc.stdout, proc.stdout
    line = last_line(proc.stderr)
    assert line.startswith(f"o2p: the Kafka broker {cfg.kafka.bootstrap_servers} has been unreachable for 1"), proc.stderr
    assert "start it (`o2p kafka up`)" in line and "Traceback" not in proc.stderr, proc.stderr
    assert 12 <= took < 60, took

    # back after a few seconds: capture resumes and lands everything, exit 0
    log = open(tmp_path / "capture.log", "w")
    p = subprocess.Popen([sys.executable, "-m", "o2p.cli", "--config", str(cfg_file), "--home", str(cfg.home_path),
                          "capture", "--until-idle"], cwd=REPO, env={**os.environ, **SALT}, stdout=log,
                         stderr=subprocess.STDOUT)
    try:
        time.sleep(5)
        kb.up(own_broker, log=lambda *_: None)
        assert p.wait(timeout=180) == 0, (tmp_path / "capture.log").read_text()
    finally:
        if p.poll() is None:
            p.kill()
    out = (tmp_path / "capture.log").read_text()
    assert "unreachable for" in out and "reachable again after" in out, out
    offsets, event_ids, _ = landed(cfg)
    assert offsets == every_offset_once(cfg) and len(event_ids) == 500


def test_a_broker_killed_in_the_middle_of_capture_and_restarted_loses_and_doubles_nothing(own_broker, tmp_path):
    """kill -9 of the broker while capture lands a backlog in small batches: capture says it is
    waiting, resumes when the broker is back, and every offset lands exactly once."""
    import signal

    cfg, cfg_file = make_cfg(own_broker, tmp_path, capture_yaml="  flush_records: 300\n  broker_unreachable_seconds: 120\n")
    publish_clicks(cfg, 40000, "mid")
    log_path = tmp_path / "capture-mid.log"
    p = subprocess.Popen([sys.executable, "-u", "-m", "o2p.cli", "--config", str(cfg_file), "--home",
                          str(cfg.home_path), "capture", "--until-idle"], cwd=REPO, env={**os.environ, **SALT},
                         stdout=open(log_path, "w"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while "capture: assigned" not in log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(kb._pid(own_broker), signal.SIGKILL)      # the broker dies mid-capture
        (kb._dir(own_broker) / "broker.pid").unlink(missing_ok=True)
        time.sleep(8)
        assert p.poll() is None, log_path.read_text()       # still waiting, not dead
        kb.up(own_broker, log=lambda *_: None)
        assert p.wait(timeout=240) == 0, log_path.read_text()
    finally:
        if p.poll() is None:
            p.kill()
    out = log_path.read_text()
    assert "unreachable for" in out and "reachable again after" in out, out
    offsets, event_ids, _ = landed(cfg)
    assert offsets == every_offset_once(cfg) and len(event_ids) == 40000


def test_publishing_a_message_larger_than_the_broker_accepts_is_refused_before_sending(broker, tmp_path):
    cfg, cfg_file = make_cfg(broker, tmp_path)
    big = {"event_id": "big", "event_type": "click", "occurred_at": "2026-10-02T10:00:00+08:00", "source": "bot",
           "schema_version": 1, "promoter_id": "P", "share_id": "S", "buyer_id": "B", "device_id": "D",
           "sku_id": "SKU1", "channel": "group", "user_agent": "x" * (3 * 1024 * 1024)}
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps({**big, "event_id": "small", "user_agent": "ok"}) + "\n" + json.dumps(big) + "\n")
    proc = o2p(cfg_file, cfg.home_path, "publish", str(events))
    assert proc.returncode == 2, proc.stderr
    assert f"{events}:2: the message is 3145" in proc.stderr
    assert last_line(proc.stderr).startswith("o2p: messages too large to publish (nothing was published)")
    assert "Traceback" not in proc.stderr
    from streaming.health import log_offsets

    assert sum(end - begin for begin, end in log_offsets(cfg).values()) == 0   # not even the small one


def test_a_reader_that_closes_the_pipe_gets_no_traceback(broker, tmp_path):
    cfg, cfg_file = make_cfg(broker, tmp_path)
    p = subprocess.Popen([sys.executable, "-m", "o2p.cli", "--config", str(cfg_file), "--home", str(cfg.home_path),
                          "capture", "--status"], cwd=REPO, env={**os.environ, **SALT},
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()   # as `| head` does once it has what it wants
    _, err = p.communicate(timeout=120)
    assert p.returncode == 141 and b"Traceback" not in err and b"BrokenPipe" not in err, err


def test_every_path_of_the_home_is_kept_as_text_by_the_broker(tmp_path):
    """The broker's properties file holds the data folder of a hostile home intact (Java escapes)."""
    home = Path(tmp_path) / 'it\'s "o2p" $HOME \\ 家,x'
    cfg_file = tmp_path / "b.yaml"
    cfg_file.write_text('kafka:\n  bootstrap_servers: "127.0.0.1:1"\n')
    cfg = load_config(cfg_file, home=home)
    text = kb._properties(cfg, home / "kafka" / "data")
    value = next(ln for ln in text.splitlines() if ln.startswith("log.dirs=")).removeprefix("log.dirs=")
    assert value.isascii() and "," not in value
    unescaped = value.encode("ascii").decode("unicode_escape")
    assert os.readlink(unescaped) == str(home / "kafka" / "data")   # the alias of exactly that folder


# ---- capture through faults (issue #16) ------------------------------------------------------

def start_capture(cfg_file, cfg, log_path, *extra):
    return subprocess.Popen([sys.executable, "-u", "-m", "o2p.cli", "--config", str(cfg_file), "--home",
                             str(cfg.home_path), "capture", *extra], cwd=REPO, env={**os.environ, **SALT},
                            stdout=open(log_path, "w"), stderr=subprocess.STDOUT)


def wait_for(what, predicate, timeout: float, poll: float = 0.2):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"not within {timeout:g} s: {what}"
        time.sleep(poll)
    return time.monotonic()


def kill_broker(cfg) -> None:
    import signal

    os.killpg(kb._pid(cfg), signal.SIGKILL)
    (kb._dir(cfg) / "broker.pid").unlink(missing_ok=True)


def group_offsets(cfg) -> dict:
    """The group's committed offsets as an independent tool sees them (the admin API, as
    kafka-consumer-groups.sh and lag exporters read them)."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=cfg.kafka.bootstrap_servers, client_id="test-admin",
                             request_timeout_ms=5000)
    try:
        group = cfg.kafka.consumer_group
        return {(tp.topic, tp.partition): om.offset
                for tp, om in admin.list_group_offsets(group)[group].items() if om.offset >= 0}
    finally:
        admin.close()


def log_ends(cfg) -> dict:
    from streaming.health import log_offsets

    return {key: end for key, (_, end) in (log_offsets(cfg) or {}).items()}


COMMIT_BOUND_S = 20   # idle capture: the group's committed offsets at the landed state within this


def test_commits_that_failed_in_an_outage_are_retried_until_the_group_offsets_are_at_the_log_end(own_broker, tmp_path):
    """A batch lands while the broker is down (its commit fails); once the broker is back the
    idle capture's group offsets reach the log end within COMMIT_BOUND_S, while it keeps running.
    Without the retry the group's offsets stayed behind (None here) until capture stopped."""
    cfg, cfg_file = make_cfg(own_broker, tmp_path, capture_yaml="  flush_seconds: 15\n")
    log_path = tmp_path / "capture-commit.log"
    p = start_capture(cfg_file, cfg, log_path)
    try:
        wait_for("capture assigned", lambda: "capture: assigned" in log_path.read_text(), 60)
        publish_clicks(cfg, 3000, "commit")   # < 5000 a partition: buffered until flush_seconds
        ends = {key: end for key, end in log_ends(cfg).items() if end}   # nothing lands in the others
        time.sleep(2)                          # polled into the buffers, not all landed yet
        assert sum(r["landed"] for r in capture_health(cfg)) < 3000
        kill_broker(own_broker)
        wait_for("the rest landed while the broker is down",
                 lambda: sum(r["landed"] for r in capture_health(cfg)) == 3000, 40)
        time.sleep(2)
        kb.up(own_broker, log=lambda *_: None)
        back = time.monotonic()
        got = {}

        def committed_at_log_end():
            nonlocal got
            try:
                got = group_offsets(cfg)
            except Exception as exc:   # noqa: BLE001 - the coordinator may still be loading
                got = {"error": repr(exc)}
            return got == ends

        try:
            took = wait_for("group offsets at the log end", committed_at_log_end, COMMIT_BOUND_S + 40, poll=1) - back
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {ends} expected, {got} committed") from None
        print(f"group offsets at the log end {took:.1f} s after the broker was back")
        assert took <= COMMIT_BOUND_S + 15, took   # + the broker's own start and the group's rejoin
        assert p.poll() is None, log_path.read_text()   # still running, idle
        p.send_signal(__import__("signal").SIGTERM)
        assert p.wait(timeout=60) == 0, log_path.read_text()
    finally:
        if p.poll() is None:
            p.kill()
    offsets, event_ids, _ = landed(cfg)
    assert offsets == every_offset_once(cfg) and len(event_ids) == 3000


def test_capture_reports_while_the_broker_is_down_and_lands_soon_after_it_is_back(own_broker, tmp_path):
    """The service (no --until-idle) says every progress interval that it is waiting for the broker,
    and lands what is published after the broker returns within RESUME_BOUND_S."""
    cfg, cfg_file = make_cfg(own_broker, tmp_path, capture_yaml="  flush_seconds: 1\n")
    log_path = tmp_path / "capture-outage.log"
    p = start_capture(cfg_file, cfg, log_path)
    try:
        wait_for("capture assigned", lambda: "capture: assigned" in log_path.read_text(), 60)
        publish_clicks(cfg, 1000, "before")
        wait_for("1000 landed", lambda: sum(r["landed"] for r in capture_health(cfg)) == 1000, 60)
        kill_broker(own_broker)
        mark = len(log_path.read_text())
        waiting_lines = lambda: [ln for ln in log_path.read_text()[mark:].splitlines()  # noqa: E731
                                 if "unreachable for" in ln and ln.endswith("waiting")]
        # a progress line every 10 s: two within 30 s (the first may take one interval to come)
        wait_for("two 'unreachable … waiting' progress lines", lambda: len(waiting_lines()) >= 2, 30, poll=0.5)
        assert p.poll() is None, log_path.read_text()
        waiting = waiting_lines()
        assert all("landed 1000" in ln for ln in waiting), waiting
        kb.up(own_broker, log=lambda *_: None)
        back = time.monotonic()
        publish_clicks(cfg, 500, "after")
        first = wait_for("the events published after the broker came back landed",
                         lambda: sum(r["landed"] for r in capture_health(cfg)) == 1500, 120, poll=0.1)
        print(f"broker back → events published then landed: {first - back:.1f} s")
        assert first - back <= RESUME_BOUND_S, (first - back, log_path.read_text())
        assert "reachable again after" in log_path.read_text()
        p.send_signal(__import__("signal").SIGTERM)
        assert p.wait(timeout=60) == 0, log_path.read_text()
    finally:
        if p.poll() is None:
            p.kill()
    offsets, event_ids, _ = landed(cfg)
    assert offsets == every_offset_once(cfg) and len(event_ids) == 1500


RESUME_BOUND_S = 20


def _catches(pid: int, signum: int) -> bool:
    """Whether the process has a handler installed for the signal (/proc/PID/status SigCgt)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    except FileNotFoundError:
        pass
    return False


def test_a_stop_signal_at_any_moment_after_start_exits_0_with_nothing_half_written(broker, tmp_path):
    """SIGTERM (and SIGINT) 0 ms to 1.5 s after spawn: once o2p's first line has run (its SIGTERM
    handler shows in /proc/PID/status) the signal is handled, exit 0; before that — the
    interpreter's own start-up, 0.1-0.2 s on this busy machine, no file open yet — the signal's
    default action ends the process, as documented. Either way nothing is left half-written: no
    temporary files, nothing landed twice, and a final run lands every offset exactly once."""
    import signal

    cfg, cfg_file = make_cfg(broker, tmp_path, capture_yaml="  flush_records: 500\n")
    publish_clicks(cfg, 3000, "sig")
    outcomes = []
    for delay, signum in [(0, signal.SIGTERM), (0.01, signal.SIGTERM), (0.05, signal.SIGTERM),
                          (0.2, signal.SIGTERM), (1.0, signal.SIGTERM), (1.5, signal.SIGTERM),
                          (0.2, signal.SIGINT), (1.0, signal.SIGINT)]:
        log_path = tmp_path / f"capture-sig-{delay}-{signum}.log"
        p = start_capture(cfg_file, cfg, log_path)
        try:
            time.sleep(delay)
            handled = _catches(p.pid, signal.SIGTERM)   # o2p's handlers (Python's own catch SIGINT)
            p.send_signal(signum)
            code = p.wait(timeout=120)
        finally:
            if p.poll() is None:
                p.kill()
        out = log_path.read_text()
        outcomes.append((delay, signum.name, handled, code))
        assert code == 0 or not handled, (delay, signum, handled, code, out)
        assert code == 0 or "capture" not in out, out     # killed before capture began
        tmp = cfg.landing_path / "_tmp"
        assert not tmp.is_dir() or not list(tmp.iterdir()), (delay, list(tmp.iterdir()))
        offsets, _, _ = landed(cfg)
        assert set(offsets.values()) <= {1}, delay     # nothing landed twice
    print(outcomes)
    proc = o2p(cfg_file, cfg.home_path, "capture", "--until-idle")
    assert proc.returncode == 0, proc.stderr
    offsets, event_ids, _ = landed(cfg)
    assert offsets == every_offset_once(cfg) and len(event_ids) == 3000
