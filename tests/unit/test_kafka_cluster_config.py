"""The local Kafka cluster's configuration (issue #16): one address per node, replication from
the number of brokers, each node's properties; nothing is started here."""

import pytest

from o2p.config import load_config
from o2p.errors import InputError
from streaming import broker as kb


def cfg_of(tmp_path, kafka_yaml: str):
    f = tmp_path / "o2p.yaml"
    f.write_text("kafka:\n" + kafka_yaml)
    return load_config(f, home=tmp_path)


def test_one_address_stands_for_consecutive_port_pairs_and_clients_get_every_node(tmp_path):
    cfg = cfg_of(tmp_path, '  bootstrap_servers: "127.0.0.1:9092"\n  local_brokers: 3\n')
    assert cfg.kafka.bootstrap_servers == "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096"
    assert kb.nodes(cfg) == [("127.0.0.1", 9092), ("127.0.0.1", 9094), ("127.0.0.1", 9096)]
    named = cfg_of(tmp_path, '  bootstrap_servers: "127.0.0.1:7000,127.0.0.1:7100,127.0.0.1:7200"\n  local_brokers: 3\n')
    assert kb.nodes(named) == [("127.0.0.1", 7000), ("127.0.0.1", 7100), ("127.0.0.1", 7200)]
    one = cfg_of(tmp_path, '  bootstrap_servers: "127.0.0.1:9092"\n')
    assert one.kafka.local_brokers == 1 and kb.nodes(one) == [("127.0.0.1", 9092)]


def test_a_count_of_addresses_that_is_neither_one_nor_the_nodes_is_refused_naming_the_keys(tmp_path):
    with pytest.raises(InputError) as err:
        cfg_of(tmp_path, '  bootstrap_servers: "127.0.0.1:9092,127.0.0.1:9094"\n  local_brokers: 3\n')
    assert "kafka.local_brokers is 3 but kafka.bootstrap_servers names 2 addresses" in str(err.value)
    with pytest.raises(InputError, match="kafka.local_brokers"):
        cfg_of(tmp_path, "  local_brokers: 0\n")


def test_replication_factor_and_min_insync_replicas_follow_the_brokers():
    assert [kb.replication(n) for n in (1, 2, 3, 5)] == [(1, 1), (2, 1), (3, 2), (3, 2)]


def test_each_node_is_a_broker_and_a_controller_of_one_quorum(tmp_path):
    cfg = cfg_of(tmp_path, '  bootstrap_servers: "127.0.0.1:9092"\n  local_brokers: 3\n')
    props = dict(ln.split("=", 1) for ln in kb._properties(cfg, tmp_path / "data", node=2).splitlines())
    assert props["process.roles"] == "broker,controller" and props["node.id"] == "2"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:9093,2@127.0.0.1:9095,3@127.0.0.1:9097"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9094,CONTROLLER://127.0.0.1:9095"
    assert (props["default.replication.factor"], props["min.insync.replicas"],
            props["offsets.topic.replication.factor"], props["unclean.leader.election.enable"]) == ("3", "2", "3", "false")
    single = dict(ln.split("=", 1) for ln in kb._properties(cfg_of(tmp_path, "  partitions: 3\n"), tmp_path).splitlines())
    assert (single["node.id"], single["controller.quorum.voters"], single["default.replication.factor"],
            single["min.insync.replicas"]) == ("1", "1@127.0.0.1:9093", "1", "1")


def test_brokers_on_the_command_line_derive_the_addresses_again(tmp_path):
    cfg = cfg_of(tmp_path, '  bootstrap_servers: "127.0.0.1:9092"\n')
    three = kb.with_brokers(cfg, 3)
    assert three.kafka.local_brokers == 3 and three.home == cfg.home
    assert three.kafka.bootstrap_servers == "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096"
    assert kb.with_brokers(three, 1).kafka.bootstrap_servers == "127.0.0.1:9092"
    assert kb.status(three) == "stopped"   # nothing of this home runs
