"""The group's committed offsets follow the landed state (issue #16): a failed commit is sent
again, one waiting for its answer is not duplicated, and an assignment commits the state file's
offset. The broker side is tested in tests/integration/test_faults.py; here kafka-python's
consumer is a recording stand-in (only `assignment` and `commit_async`)."""

from kafka.errors import NodeNotReadyError
from kafka.structs import TopicPartition

from o2p.config import load_config
from streaming.capture.consumer import Capture
from streaming.capture.sink import PartitionStats

TP = TopicPartition("o2p.clicks.v1", 0)
KEY = (TP.topic, TP.partition)


class Consumer:
    def __init__(self):
        self.sent = []        # (offsets, callback) of every commit_async

    def assignment(self):
        return {TP}

    def commit_async(self, offsets, callback):
        self.sent.append(({(tp.topic, tp.partition): om.offset for tp, om in offsets.items()}, callback))

    def answer(self, i, response=None):
        offsets, callback = self.sent[i]
        callback(offsets, response if response is not None else object())


def capture(tmp_path):
    cap = Capture(load_config(None, home=tmp_path), echo=lambda *_: None)
    cap.consumer = Consumer()
    return cap


def test_a_failed_commit_is_sent_again_until_the_broker_confirms_it(tmp_path):
    cap = capture(tmp_path)
    cap._landed(TP.topic, 0, {"next_offset": 500, "stats": PartitionStats(next_offset=500), "freshness": None})
    assert cap.consumer.sent[0][0] == {KEY: 500}
    cap._commit_behind(100.0)
    assert len(cap.consumer.sent) == 1            # waiting for its answer: not sent twice
    cap.consumer.answer(0, NodeNotReadyError("broker down"))
    assert cap.commits_behind() == {KEY: 500}
    cap._commit_behind(100.5)
    assert len(cap.consumer.sent) == 1            # once a second at most
    cap._commit_behind(101.0)
    assert cap.consumer.sent[1][0] == {KEY: 500}  # sent again
    cap.consumer.answer(1)
    assert cap.committed == {KEY: 500} and cap.commits_behind() == {}
    cap._commit_behind(105.0)
    assert len(cap.consumer.sent) == 2            # nothing behind: nothing sent


def test_a_commit_never_answered_is_sent_again_after_10_s(tmp_path):
    cap = capture(tmp_path)
    cap.stats[KEY] = PartitionStats(next_offset=7)
    cap._commit_behind(1000.0)
    sent_at = cap._in_flight[KEY][1]
    cap._commit_behind(sent_at + 5)
    assert len(cap.consumer.sent) == 1
    cap._commit_behind(sent_at + 10.5)
    assert len(cap.consumer.sent) == 2


def test_an_assigned_partition_commits_its_landed_offset_even_with_nothing_new_to_land(tmp_path):
    cap = capture(tmp_path)
    cap.stats[KEY] = PartitionStats(next_offset=226_532)   # recovered from the state file
    cap._commit_behind(50.0)
    assert cap.consumer.sent[0][0] == {KEY: 226_532}
    cap.consumer.answer(0)
    assert cap.commits_behind() == {}
