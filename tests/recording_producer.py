"""An in-memory stand-in for the dead-letter producer in unit tests of the sink (the real broker
is in tests/integration): it records what was sent, and every send is acknowledged."""


class Acknowledged:
    """What kafka-python's future says once the broker acknowledged the message."""

    is_done = True

    @staticmethod
    def failed() -> bool:
        return False


class RecordingProducer:
    def __init__(self):
        self.sent: list[tuple] = []    # (topic, key, value, headers as a list of pairs)

    def send(self, topic, key=None, value=None, headers=None):
        self.sent.append((topic, key, value, list(headers or [])))
        return Acknowledged()

    def flush(self, timeout=None):
        pass

    def close(self):
        pass
