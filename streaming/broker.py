"""A local single-node Apache Kafka broker in KRaft mode (`o2p kafka up|down|status`).

The jars come from Maven Central through `broker/pom.xml` (resolved once into
`broker/target/lib`); the broker's data, logs and pid live under
`$O2P_HOME/broker`. The broker listens on the host and port of
`kafka.bootstrap_servers` (which must be on loopback) and its controller on
the next port. When the config points at another cluster, nothing is started.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

from o2p.config import Config
from o2p.errors import InputError, O2PError
from o2p.quoting import alias, java_property
from streaming.producer import max_message_size

REPO = Path(__file__).resolve().parent.parent
POM = REPO / "broker" / "pom.xml"
LOG4J = REPO / "broker" / "log4j2.properties"
LIB = Path(os.environ.get("O2P_BROKER_LIB", REPO / "broker" / "target" / "lib"))
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def _endpoint(cfg: Config) -> tuple[str, int]:
    first = cfg.kafka.bootstrap_servers.split(",")[0].strip()
    host, _, port = first.rpartition(":")
    return host, int(port)


def is_local(cfg: Config) -> bool:
    host, _ = _endpoint(cfg)
    return cfg.kafka.local_broker and host in LOOPBACK


def _dir(cfg: Config) -> Path:
    return cfg.home_path / "broker"


def _pid(cfg: Config) -> int | None:
    pidfile = _dir(cfg) / "broker.pid"
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, 0)
        return pid
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return None


def _alive(pid: int) -> bool:
    """True while the process runs; reaps it when it is our own child (tests and benchmarks start
    the broker in-process, and an unreaped child stays a zombie that kill(pid, 0) still finds)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host.strip("[]"), port)) == 0


def listening(cfg: Config) -> bool:
    """Whether any bootstrap server accepts a TCP connection (0.5 s at most each): asked before a
    Kafka client call that could otherwise block for its whole timeout on a stopped broker."""
    for hp in cfg.kafka.bootstrap_servers.split(","):
        host, _, port = hp.strip().rpartition(":")
        if _port_open(host.strip("[]"), int(port)):
            return True
    return False


def ensure_jars(log=print) -> Path:
    """Resolve the broker's classpath from Maven Central (once)."""
    if LIB.is_dir() and any(LIB.glob("kafka_2.13-*.jar")):
        return LIB
    if shutil.which("mvn") is None:
        raise O2PError("Maven (mvn) is needed to fetch the Kafka broker jars; install it (apt-get install maven)")
    log(f"resolving the Kafka broker jars from Maven Central into {LIB} …")
    tmp = LIB.with_name(LIB.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    proc = subprocess.run(
        ["mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies", f"-DoutputDirectory={tmp}"],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        raise O2PError(f"mvn could not resolve the broker jars:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
    shutil.rmtree(LIB, ignore_errors=True)
    tmp.rename(LIB)
    return LIB


def _properties(cfg: Config, data: Path) -> str:
    host, port = _endpoint(cfg)
    host = host.strip("[]")
    cport = port + 1
    return "\n".join([
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.voters=1@{host}:{cport}",
        f"listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{cport}",
        f"advertised.listeners=PLAINTEXT://{host}:{port}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        # a Java properties value, and log.dirs is a comma-separated list: quoted, and a path with a
        # comma reached through its alias (o2p.quoting)
        f"log.dirs={java_property(alias(data, ','))}",
        f"num.partitions={cfg.kafka.partitions}",
        "offsets.topic.replication.factor=1",
        "offsets.topic.num.partitions=3",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1",
        "group.initial.rebalance.delay.ms=0",
        "group.min.session.timeout.ms=1000",
        "auto.create.topics.enable=false",
        f"message.max.bytes={max_message_size(cfg)}",   # what the publisher may send
        "",
    ])


def _java(classpath: Path) -> list[str]:
    java = shutil.which("java")
    if java is None:
        raise O2PError("Java 17+ is needed for the local Kafka broker (java not found on PATH)")
    return [java, "-cp", f"{classpath}/*"]


def up(cfg: Config, log=print, timeout: float = 90) -> str:
    """Start the broker if needed, create the topics, return the bootstrap address."""
    if not is_local(cfg):
        log(f"kafka.bootstrap_servers is {cfg.kafka.bootstrap_servers}: not a local broker, nothing started")
        ensure_topics(cfg)
        return cfg.kafka.bootstrap_servers
    host, port = _endpoint(cfg)
    bdir = _dir(cfg)
    if _pid(cfg) and _port_open(host, port):
        ensure_topics(cfg)
        return cfg.kafka.bootstrap_servers
    if _port_open(host, port):
        raise InputError(
            f"kafka.bootstrap_servers: {host}:{port} is already in use by another process; "
            "choose another port or set kafka.local_broker: false to use that broker"
        )
    lib = ensure_jars(log)
    data = bdir / "data"
    logs = bdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    props = bdir / "server.properties"
    props.write_text(_properties(cfg, data))
    java = _java(lib)
    jvm = [f"-Dkafka.logs.dir={logs}", f"-Dlog4j2.configurationFile={LOG4J}", "-Xms256m", "-Xmx1g"]
    if not (data / "meta.properties").exists():
        cluster_id = "-"
        while cluster_id.startswith("-"):   # an id starting with "-" reads as an option to the tool
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        proc = subprocess.run(
            java[:1] + jvm + java[1:] + ["kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props)],
            capture_output=True, text=True,
        )
        if proc.returncode != 0:
            raise O2PError(f"formatting the broker storage failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    with open(logs / "stdout.log", "ab") as out:
        proc = subprocess.Popen(
            java[:1] + jvm + java[1:] + ["kafka.Kafka", str(props)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    (bdir / "broker.pid").write_text(str(proc.pid))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise O2PError(f"the broker exited with code {proc.returncode}; see {logs}/server.log and stdout.log")
        if _port_open(host, port):
            break
        time.sleep(0.3)
    else:
        down(cfg, log=lambda *_: None)
        raise O2PError(f"the broker did not open {host}:{port} within {timeout:.0f} s; see {logs}/server.log")
    ensure_topics(cfg)
    return cfg.kafka.bootstrap_servers


def ensure_topics(cfg: Config, timeout: float = 60) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    deadline = time.monotonic() + timeout
    t = cfg.kafka.topics
    wanted = [t.clicks, t.orders, t.refunds, t.deadletter]
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            admin = KafkaAdminClient(bootstrap_servers=cfg.kafka.bootstrap_servers, client_id="o2p-admin")
            try:
                existing = set(admin.list_topics())
                missing = [n for n in wanted if n not in existing]
                if missing:
                    try:
                        admin.create_topics(
                            [NewTopic(n, cfg.kafka.partitions, 1) for n in missing], timeout_ms=30000
                        )
                    except TopicAlreadyExistsError:
                        pass
                # wait until metadata shows every topic with a leader
                if set(wanted) <= set(admin.list_topics()):
                    return
            finally:
                admin.close()
        except KafkaError as exc:
            last = exc
        time.sleep(0.5)
    raise O2PError(f"could not create the topics on {cfg.kafka.bootstrap_servers}: {last}")


def down(cfg: Config, log=print, timeout: float = 30) -> bool:
    pid = _pid(cfg)
    if pid is None:
        log("no local broker is running")
        return False
    os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            break
        time.sleep(0.1)
    else:
        os.killpg(pid, signal.SIGKILL)
    (_dir(cfg) / "broker.pid").unlink(missing_ok=True)
    log(f"local broker (pid {pid}) stopped")
    return True


def status(cfg: Config) -> str:
    host, port = _endpoint(cfg)
    if not is_local(cfg):
        state = "reachable" if _port_open(host, port) else "NOT reachable"
        return f"external cluster {cfg.kafka.bootstrap_servers}: {state}"
    pid = _pid(cfg)
    if pid and _port_open(host, port):
        return f"running: pid {pid}, bootstrap {cfg.kafka.bootstrap_servers}, data {_dir(cfg) / 'data'}"
    if pid:
        return f"starting or unhealthy: pid {pid}, {host}:{port} not open yet"
    return "stopped"



def free_port_pair() -> int:
    """A loopback port p with p+1 also free (the broker and controller listeners)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port >= 65000:
            continue
        with socket.socket() as s2:
            try:
                s2.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise O2PError("no free pair of loopback ports")


@contextlib.contextmanager
def scratch_broker(home: Path, extra_yaml: str = "", log=print):
    """A throw-away local broker on a free loopback port pair, for tests and benchmarks.
    Yields its Config (home = `home`); the broker is stopped on exit."""
    from o2p.config import load_config

    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    cfg_file = home / "broker.yaml"
    cfg_file.write_text(f'kafka:\n  bootstrap_servers: "127.0.0.1:{free_port_pair()}"\n{extra_yaml}')
    cfg = load_config(cfg_file, home=home)
    up(cfg, log=log)
    try:
        yield cfg
    finally:
        down(cfg, log=lambda *_: None)
