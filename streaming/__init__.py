"""Kafka side of the pipeline: event contracts, the local broker, producer, capture consumer, simulator."""
