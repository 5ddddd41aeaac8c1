"""An in-memory stand-in for the dead-letter producer in unit tests of the sink (the real broker
is in tests/integration): it records what was sent, and every send is acknowledged."""


class Acknowledged:
    """What kafka-python's future says once the broker acknowledged the message."""

    is_done = True

    @staticmethod
    def failed() -> bool:
        return False

    def add_errback(self, fn):
        return self


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


class Refused:
    """A future the broker answered with `error`."""

    is_done = True

    def __init__(self, error):
        self.exception = error

    @staticmethod
    def failed() -> bool:
        return True


class RefusingProducer(RecordingProducer):
    """Records like RecordingProducer, but the broker refuses the first `times` sends with `error`
    (a retriable one, as when it is down; or not, as for a record it will never take)."""

    def __init__(self, error, times: int = 10**9):
        super().__init__()
        self.error, self.left = error, times

    def send(self, topic, key=None, value=None, headers=None):
        if self.left > 0:
            self.left -= 1
            self.sent.append((topic, key, value, list(headers or [])))
            return Refused(self.error)
        return super().send(topic, key, value, headers)
