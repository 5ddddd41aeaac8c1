"""A local Apache Kafka broker in KRaft mode, one node or a cluster (`o2p kafka up|down|status`).

The jars come from Maven Central through `broker/pom.xml` (resolved once into
`broker/target/lib`). One node (`kafka.local_brokers: 1`, the default) keeps its data, logs and
pid under `$O2P_HOME/broker` and listens on the host and port of `kafka.bootstrap_servers`
(which must be on loopback), its controller on the next port. A cluster of N
(`kafka.local_brokers: N`, or `o2p kafka up --brokers N` for once) is N processes, each a broker
and a controller (combined KRaft nodes, a controller quorum of N), node i under
`$O2P_HOME/broker/nodes/node-i` on the i-th bootstrap address (its controller on the next port).
Topics get replication factor min(3, brokers) and `min.insync.replicas` 2 from three brokers on
(`replication`), so with acks=all a write is on two nodes before it is acknowledged and the
cluster keeps accepting writes and serving reads with one node down. When the config points at
another cluster, nothing is started.
"""

from __future__ import annotations

import base64
import contextlib
import json
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


def _split(hp: str) -> tuple[str, int]:
    host, _, port = hp.strip().rpartition(":")
    return host, int(port)


def _endpoint(cfg: Config) -> tuple[str, int]:
    return _split(cfg.kafka.bootstrap_servers.split(",")[0])


def nodes(cfg: Config) -> list[tuple[str, int]]:
    """(host, broker port) of each node of the local broker or cluster, node 1 first; each node's
    controller listens on the next port (the config validates one address per node)."""
    if cfg.kafka.local_brokers == 1:
        return [_endpoint(cfg)]
    return [_split(hp) for hp in cfg.kafka.bootstrap_servers.split(",")]


def replication(brokers: int) -> tuple[int, int]:
    """(replication factor, min.insync.replicas) of the topics on a cluster of `brokers`: three
    copies, two of which must have a write before acks=all acknowledges it, so one node may die
    without losing an acknowledged write or stopping writes; fewer brokers, fewer copies."""
    rf = min(3, brokers)
    return rf, 2 if rf >= 3 else 1


def is_local(cfg: Config) -> bool:
    host, _ = _endpoint(cfg)
    return cfg.kafka.local_broker and host in LOOPBACK


def with_brokers(cfg: Config, brokers: int) -> Config:
    """The same config with `kafka.local_brokers` set to `brokers` (`o2p kafka up --brokers N`)."""
    if brokers == cfg.kafka.local_brokers:
        return cfg
    data = cfg.model_dump(mode="json")
    if cfg.kafka.local_brokers > 1:   # addresses derived from the first one are derived again
        data["kafka"]["bootstrap_servers"] = cfg.kafka.bootstrap_servers.split(",")[0]
    data["kafka"]["local_brokers"] = brokers
    try:
        return Config(**data, source=cfg.source, home=cfg.home)
    except ValueError as exc:
        raise InputError(f"--brokers {brokers}: {exc}") from None


def _dir(cfg: Config) -> Path:
    return cfg.home_path / "broker"


def _cluster_dir(cfg: Config) -> Path:
    return _dir(cfg) / "nodes"


def _node_dir(cfg: Config, node: int) -> Path:
    return _cluster_dir(cfg) / f"node-{node}"


def _read_pid(pidfile: Path) -> int | None:
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, 0)
        return pid
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return None


def _pid(cfg: Config) -> int | None:
    """The pid of this home's one-node broker, if it runs."""
    return _read_pid(_dir(cfg) / "broker.pid")


def node_pid(cfg: Config, node: int) -> int | None:
    """The pid of node `node` (1-based) of this home's cluster, if it runs."""
    return _read_pid(_node_dir(cfg, node) / "node.pid")


def _cluster_meta(cfg: Config) -> dict | None:
    try:
        return json.loads((_cluster_dir(cfg) / "cluster.json").read_text())
    except FileNotFoundError:
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


def _properties(cfg: Config, data: Path, node: int = 1) -> str:
    """server.properties of node `node` (1-based) of the local broker or cluster."""
    addrs = [(h.strip("[]"), p) for h, p in nodes(cfg)]
    host, port = addrs[node - 1]
    cport = port + 1
    rf, min_isr = replication(len(addrs))
    lines = [
        "process.roles=broker,controller",
        f"node.id={node}",
        "controller.quorum.voters=" + ",".join(f"{i}@{h}:{p + 1}" for i, (h, p) in enumerate(addrs, start=1)),
        f"listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{cport}",
        f"advertised.listeners=PLAINTEXT://{host}:{port}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        # a Java properties value, and log.dirs is a comma-separated list: quoted, and a path with a
        # comma reached through its alias (o2p.quoting)
        f"log.dirs={java_property(alias(data, ','))}",
        f"num.partitions={cfg.kafka.partitions}",
        # the group offsets and producer-id state are replicated like the topics: a node's death
        # loses neither a committed offset nor an idempotent producer's sequence
        f"offsets.topic.replication.factor={rf}",
        "offsets.topic.num.partitions=3",
        f"transaction.state.log.replication.factor={rf}",
        f"transaction.state.log.min.isr={min_isr}",
        f"share.coordinator.state.topic.replication.factor={rf}",
        f"share.coordinator.state.topic.min.isr={min_isr}",
        f"default.replication.factor={rf}",
        f"min.insync.replicas={min_isr}",
        "unclean.leader.election.enable=false",   # never elect a replica that may lack acknowledged writes
        "group.initial.rebalance.delay.ms=0",
        "group.min.session.timeout.ms=1000",
        "auto.create.topics.enable=false",
        f"message.max.bytes={max_message_size(cfg)}",   # what the publisher may send
    ]
    if len(addrs) > 1:
        # a node killed with -9 is fenced (its partitions led elsewhere) after 6 s, not 9
        lines += ["broker.heartbeat.interval.ms=1000", "broker.session.timeout.ms=6000"]
    return "\n".join(lines + [""])


def _java(classpath: Path) -> list[str]:
    java = shutil.which("java")
    if java is None:
        raise O2PError("Java 17+ is needed for the local Kafka broker (java not found on PATH)")
    return [java, "-cp", f"{classpath}/*"]


def _jvm(logs: Path, heap: str) -> list[str]:
    return [f"-Dkafka.logs.dir={logs}", f"-Dlog4j2.configurationFile={LOG4J}", "-Xms256m", f"-Xmx{heap}"]


def _new_cluster_id() -> str:
    cluster_id = "-"
    while cluster_id.startswith("-"):   # an id starting with "-" reads as an option to the tool
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    return cluster_id


def up(cfg: Config, log=print, timeout: float = 90, brokers: int | None = None) -> str:
    """Start the broker (or every node of the cluster not running) if needed, create the topics,
    return the bootstrap address. `brokers` overrides `kafka.local_brokers`."""
    if brokers is not None:
        cfg = with_brokers(cfg, brokers)
    if not is_local(cfg):
        log(f"kafka.bootstrap_servers is {cfg.kafka.bootstrap_servers}: not a local broker, nothing started")
        ensure_topics(cfg)
        return cfg.kafka.bootstrap_servers
    if cfg.kafka.local_brokers > 1:
        _up_cluster(cfg, log, timeout)
        ensure_topics(cfg)
        return cfg.kafka.bootstrap_servers
    host, port = _endpoint(cfg)
    bdir = _dir(cfg)
    if _pid(cfg) and _port_open(host, port):
        ensure_topics(cfg)
        return cfg.kafka.bootstrap_servers
    _refuse_a_running_cluster(cfg, 1)
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
    java, jvm = _java(lib), _jvm(logs, "1g")
    if not (data / "meta.properties").exists():
        proc = subprocess.run(
            java[:1] + jvm + java[1:] + ["kafka.tools.StorageTool", "format", "-t", _new_cluster_id(), "-c", str(props)],
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


def _refuse_a_running_cluster(cfg: Config, wanted: int) -> None:
    """One home runs one broker or one cluster: asking for the other while it runs is refused."""
    meta = _cluster_meta(cfg)
    if wanted == 1 and meta and any(node_pid(cfg, i) for i in range(1, len(meta["nodes"]) + 1)):
        raise InputError(f"a local cluster of {len(meta['nodes'])} nodes of this home is running "
                         f"({_cluster_dir(cfg)}): `o2p kafka down` first, or set kafka.local_brokers: "
                         f"{len(meta['nodes'])}")
    if wanted > 1 and _pid(cfg):
        raise InputError(f"the one-node broker of this home is running (pid {_pid(cfg)}): `o2p kafka down` "
                         f"first to start a cluster of {wanted}")


def _up_cluster(cfg: Config, log, timeout: float) -> None:
    """Start every node of the local cluster that is not running (all of them the first time,
    after formatting each node's storage with one cluster id) and wait until all are brokers."""
    addrs = nodes(cfg)
    n = len(addrs)
    cdir = _cluster_dir(cfg)
    meta = _cluster_meta(cfg)
    if meta is not None and [tuple(a) for a in meta["nodes"]] != addrs:
        raise InputError(
            f"the local cluster in {cdir} was made for the nodes {', '.join(f'{h}:{p}' for h, p in meta['nodes'])}, "
            f"not {', '.join(f'{h}:{p}' for h, p in addrs)} (kafka.local_brokers, kafka.bootstrap_servers): "
            f"run it with its own settings, or stop it and remove {cdir} to make another (its data goes)")
    _refuse_a_running_cluster(cfg, n)
    to_start = [i for i in range(1, n + 1) if not node_pid(cfg, i)]
    for i in to_start:
        host, port = addrs[i - 1]
        for p in (port, port + 1):
            if _port_open(host, p):
                raise InputError(f"kafka.bootstrap_servers: {host}:{p} (node {i} of {n}) is already in use by "
                                 "another process; choose other ports or set kafka.local_broker: false")
    if not to_start:
        return
    lib = ensure_jars(log)
    java = _java(lib)
    cluster_id = meta["cluster_id"] if meta else _new_cluster_id()
    formats = []
    for i in to_start:
        nd = _node_dir(cfg, i)
        (nd / "logs").mkdir(parents=True, exist_ok=True)
        props = nd / "server.properties"
        props.write_text(_properties(cfg, nd / "data", node=i))
        if not (nd / "data" / "meta.properties").exists():   # the nodes' formats run side by side
            formats.append((i, subprocess.Popen(
                java[:1] + _jvm(nd / "logs", "256m") + java[1:]
                + ["kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props)],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)))
    for i, proc in formats:
        out = proc.communicate()[0]
        if proc.returncode != 0:
            raise O2PError(f"formatting the storage of node {i} failed:\n{out[-3000:]}")
    cdir.mkdir(parents=True, exist_ok=True)
    (cdir / "cluster.json").write_text(json.dumps({"cluster_id": cluster_id, "nodes": addrs}))
    procs = {}
    for i in to_start:
        nd = _node_dir(cfg, i)
        with open(nd / "logs" / "stdout.log", "ab") as out:
            procs[i] = subprocess.Popen(
                java[:1] + _jvm(nd / "logs", "768m") + java[1:] + ["kafka.Kafka", str(nd / "server.properties")],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        (nd / "node.pid").write_text(str(procs[i].pid))
    deadline = time.monotonic() + timeout
    waiting = set(to_start)
    while waiting:
        for i in sorted(waiting):
            if procs[i].poll() is not None:
                raise O2PError(f"node {i} of the local cluster exited with code {procs[i].returncode}; see "
                               f"{_node_dir(cfg, i) / 'logs'}/server.log and stdout.log")
            if _port_open(*addrs[i - 1]):
                waiting.discard(i)
        if time.monotonic() > deadline:
            down(cfg, log=lambda *_: None)
            raise O2PError(f"node(s) {sorted(waiting)} of the local cluster did not open their port within "
                           f"{timeout:.0f} s; see {cdir}/node-*/logs/server.log")
        time.sleep(0.3)
    log(f"local Kafka cluster: {n} nodes ({', '.join(f'{h}:{p}' for h, p in addrs)}), "
        f"started {', '.join(f'node {i} (pid {procs[i].pid})' for i in to_start)}")


def _live_brokers(admin) -> int:
    return len(admin.describe_cluster()["brokers"])


def ensure_topics(cfg: Config, timeout: float = 60) -> None:
    """Create the missing topics with `kafka.partitions` partitions, replication factor and
    min.insync.replicas from the brokers the cluster has (`replication`). On a local cluster
    every node must have joined first; existing topics are left as they are."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    deadline = time.monotonic() + timeout
    t = cfg.kafka.topics
    wanted = [t.clicks, t.orders, t.refunds, t.deadletter]
    expect = cfg.kafka.local_brokers if is_local(cfg) else 1
    last: Exception | str | None = None
    while time.monotonic() < deadline:
        try:
            admin = KafkaAdminClient(bootstrap_servers=cfg.kafka.bootstrap_servers, client_id="o2p-admin")
            try:
                brokers = _live_brokers(admin)
                if brokers < expect:
                    last = f"{brokers} of {expect} brokers have joined the cluster"
                    time.sleep(0.5)
                    continue
                rf, min_isr = replication(brokers)
                existing = set(admin.list_topics())
                missing = [n for n in wanted if n not in existing]
                if missing:
                    try:
                        admin.create_topics(
                            [NewTopic(n, cfg.kafka.partitions, rf, topic_configs={"min.insync.replicas": str(min_isr)})
                             for n in missing], timeout_ms=30000)
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


def _stop(pids: list[int], timeout: float) -> None:
    """SIGTERM each process group, then SIGKILL what still runs after `timeout`."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    for pid in pids:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)


def down(cfg: Config, log=print, timeout: float = 30) -> bool:
    """Stop this home's broker, or every node of its cluster (whatever kafka.local_brokers says)."""
    stopped = False
    pid = _pid(cfg)
    if pid is not None:
        _stop([pid], timeout)
        (_dir(cfg) / "broker.pid").unlink(missing_ok=True)
        log(f"local broker (pid {pid}) stopped")
        stopped = True
    meta = _cluster_meta(cfg)
    if meta is not None:
        running = {i: p for i in range(1, len(meta["nodes"]) + 1) if (p := node_pid(cfg, i))}
        if running:
            _stop(list(running.values()), timeout)
            for i in running:
                (_node_dir(cfg, i) / "node.pid").unlink(missing_ok=True)
            log(f"local cluster stopped: {', '.join(f'node {i} (pid {p})' for i, p in running.items())}")
            stopped = True
    if not stopped:
        log("no local broker is running")
    return stopped


def status(cfg: Config) -> str:
    host, port = _endpoint(cfg)
    if not is_local(cfg):
        state = "reachable" if _port_open(host, port) else "NOT reachable"
        return f"external cluster {cfg.kafka.bootstrap_servers}: {state}"
    meta = _cluster_meta(cfg)
    if meta is not None and not _pid(cfg):
        n = len(meta["nodes"])
        pids = {i: node_pid(cfg, i) for i in range(1, n + 1)}
        if cfg.kafka.local_brokers > 1 or any(pids.values()):
            rows, running = [], 0
            for i, (h, p) in enumerate(meta["nodes"], start=1):
                state = ("running" if _port_open(h, p) else "starting or unhealthy") if pids[i] else "stopped"
                running += state == "running"
                rows.append(f"  node {i}: {state}{f', pid {pids[i]}' if pids[i] else ''}, {h}:{p} (controller {h}:{p + 1})")
            head = ("running" if running == n else "stopped" if not any(pids.values())
                    else f"degraded ({running} of {n} nodes running)")
            bootstrap = ",".join(f"{h}:{p}" for h, p in meta["nodes"])
            return (f"{head}: local cluster of {n} nodes, bootstrap {bootstrap}, data {_cluster_dir(cfg)}\n"
                    + "\n".join(rows))
    pid = _pid(cfg)
    if pid and _port_open(host, port):
        return f"running: pid {pid}, bootstrap {cfg.kafka.bootstrap_servers}, data {_dir(cfg) / 'data'}"
    if pid:
        return f"starting or unhealthy: pid {pid}, {host}:{port} not open yet"
    return "stopped"


def free_port_pair(avoid: set[int] = frozenset()) -> int:
    """A loopback port p with p+1 also free (the broker and controller listeners)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port >= 65000 or {port, port + 1} & avoid:
            continue
        with socket.socket() as s2:
            try:
                s2.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise O2PError("no free pair of loopback ports")


@contextlib.contextmanager
def scratch_broker(home: Path, extra_yaml: str = "", log=print, brokers: int = 1):
    """A throw-away local broker (or cluster of `brokers` nodes, each on its own free loopback
    port pair) for tests and benchmarks. Yields its Config (home = `home`); stopped on exit."""
    from o2p.config import load_config

    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    ports: list[int] = []
    for _ in range(brokers):
        ports.append(free_port_pair(avoid={q for p in ports for q in (p, p + 1)}))
    cfg_file = home / "broker.yaml"
    cfg_file.write_text(f'kafka:\n  bootstrap_servers: "{",".join(f"127.0.0.1:{p}" for p in ports)}"\n'
                        f"  local_brokers: {brokers}\n{extra_yaml}")
    cfg = load_config(cfg_file, home=home)
    try:
        up(cfg, log=log)
        yield cfg
    finally:
        down(cfg, log=lambda *_: None)
