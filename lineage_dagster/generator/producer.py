"""The data generator: seed-schema Avro records spread over every partition of the topic."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from confluent_kafka import KafkaException, Producer

from lineage_dagster.clients.kafka import KafkaRecordSource
from lineage_dagster.ingest.avro import encode_event


def produce_events(
    client_config: dict[str, str],
    topic: str,
    *,
    rate: float | None = 10.0,
    count: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Produce `count` records (forever if None) at `rate` per second, or as fast as possible if None.

    Records go round-robin over the topic's partitions, as plain Avro binary without a key, like the
    seed's producer. Returns how many records Kafka acknowledged.
    """
    partitions = KafkaRecordSource(client_config, topic).partitions()
    producer = Producer({**client_config, "linger.ms": 20, "batch.num.messages": 10000, "compression.type": "lz4", "acks": "all"})
    failures: list[str] = []

    def on_delivery(error: object, _message: object) -> None:
        if error is not None:
            failures.append(str(error))

    sent = 0
    started = time.monotonic()
    try:
        while count is None or sent < count:
            value = encode_event(str(uuid.uuid4()), time.time_ns() // 1_000_000)
            while True:
                try:
                    producer.produce(topic, value, partition=partitions[sent % len(partitions)], on_delivery=on_delivery)
                    break
                except BufferError:
                    producer.poll(0.05)  # local queue full: let deliveries drain
            sent += 1
            if rate:
                # poll() returns early when it serves a delivery report, so wait until on schedule.
                while (ahead := started + sent / rate - time.monotonic()) > 0:
                    producer.poll(ahead)
            elif sent % 10000 == 0:
                producer.poll(0)
            if progress and sent % 10000 == 0:
                progress(sent)
    finally:
        remaining = producer.flush(30)
    if failures or remaining:
        raise KafkaException(f"{len(failures) + remaining} of {sent} records were not delivered: {failures[:3]}")
    return sent
