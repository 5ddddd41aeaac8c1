"""Settings every Kafka client of the project shares (capture's consumer, the publisher, the
dead-letter producer).

kafka-python backs off reconnecting to a broker that went away up to 30 s by default
(`reconnect_backoff_max_ms`): after an outage of that long, a client would leave the returned
broker alone for up to half a minute. librdkafka caps it at 10 s; on loopback and in a data
centre 2 s costs nothing and brings capture back within seconds of the broker
(tests/integration/test_faults.py: resumed 2.3 s after the broker came back).
"""

RECONNECT_BACKOFF_MAX_MS = 2000
