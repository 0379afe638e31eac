"""Reading exact offset ranges from Kafka with confluent-kafka, and topic metadata."""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from lineage_dagster.ledger.plan import OffsetsLostError, PartitionRange

# Errors seen while a partition leader is (re-)elected: after topic creation or a broker restart.
_TRANSIENT = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError.REQUEST_TIMED_OUT,
    KafkaError._TRANSPORT,
    KafkaError._TIMED_OUT,
}


class KafkaAccessError(RuntimeError):
    """Kafka could not be reached or the topic is unusable; the message names the setting to fix."""


@dataclass
class RecordBatch:
    """Consecutive records of one partition, as parallel lists (cheap to build, cheap to decode)."""

    partition: int
    offsets: list[int]
    timestamps: list[int]
    keys: list[bytes | None]
    values: list[bytes | None]


def _timestamp_ms(message: Message) -> int:
    return message.timestamp()[1]


class KafkaRecordSource:
    """Watermarks and exact `[start, end)` reads of one topic."""

    def __init__(self, client_config: dict[str, str], topic: str, *, timeout_s: float = 10.0) -> None:
        self.client_config = client_config
        self.topic = topic
        self.timeout_s = timeout_s

    def _consumer(self, **extra: Any) -> Consumer:
        config: dict[str, Any] = {
            **self.client_config,
            "group.id": "lineage-dagster",  # never used for commits: offsets live in the ledger
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": False,
            "auto.offset.reset": "error",
            "allow.auto.create.topics": False,  # a typo in KAFKA_TOPIC must fail, not create a topic
            "socket.connection.setup.timeout.ms": int(self.timeout_s * 1000),
            **extra,
        }
        return Consumer(config)

    def _topic_partitions(self, consumer: Consumer) -> list[int]:
        try:
            metadata = consumer.list_topics(self.topic, timeout=self.timeout_s)
        except KafkaException as error:
            raise KafkaAccessError(
                f"cannot reach Kafka at {self.client_config['bootstrap.servers']!r} ({error.args[0]}); "
                "check KAFKA_BOOTSTRAP_SERVERS and the KAFKA_SECURITY_* settings"
            ) from None
        topic = metadata.topics.get(self.topic)
        if topic is None or topic.error is not None or not topic.partitions:
            raise KafkaAccessError(f"Kafka topic {self.topic!r} does not exist; create it or fix KAFKA_TOPIC")
        return sorted(topic.partitions)

    def partitions(self) -> list[int]:
        consumer = self._consumer()
        try:
            return self._topic_partitions(consumer)
        finally:
            consumer.close()

    def watermarks(self) -> dict[int, tuple[int, int]]:
        """Low and high watermark of every partition of the topic.

        Retries briefly on errors Kafka marks retriable (a leader moving after a topic is created or
        a broker restarts), so a transient election does not fail a checkpoint.
        """
        consumer = self._consumer()
        try:
            partitions = self._topic_partitions(consumer)
            deadline = time.monotonic() + 3 * self.timeout_s
            while True:
                try:
                    return {
                        p: consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=self.timeout_s, cached=False)
                        for p in partitions
                    }
                except KafkaException as error:
                    transient = error.args[0].retriable() or error.args[0].code() in _TRANSIENT
                    if not transient or time.monotonic() > deadline:
                        raise KafkaAccessError(
                            f"cannot read offsets of Kafka topic {self.topic!r}: {error.args[0].str()}"
                        ) from None
                    time.sleep(0.5)
        finally:
            consumer.close()

    def read_ranges(self, ranges: Sequence[PartitionRange], *, batch_size: int = 50_000) -> Iterator[RecordBatch]:
        """Yield every record in the ranges, each partition in offset order, then stop.

        Fails loudly if a start offset is gone (retention) rather than skipping to what is left.
        An offset missing inside a range (compaction, transaction markers) is skipped over once the
        consumer's position has passed the range's end.
        """
        wanted = {r.partition: r for r in ranges if r.count > 0}
        if not wanted:
            return
        consumer = self._consumer(**{"fetch.max.bytes": 64 * 1024 * 1024, "queued.max.messages.kbytes": 262144})
        try:
            consumer.assign([TopicPartition(self.topic, r.partition, r.start) for r in wanted.values()])
            last_progress = time.monotonic()
            while wanted:
                messages = consumer.consume(num_messages=batch_size, timeout=0.5)
                if not messages:
                    self._finish_passed_partitions(consumer, wanted)
                    if wanted and time.monotonic() - last_progress > 6 * self.timeout_s:
                        raise KafkaAccessError(
                            f"no records from topic {self.topic!r} partitions {sorted(wanted)} for "
                            f"{6 * self.timeout_s:.0f}s; is the broker at KAFKA_BOOTSTRAP_SERVERS up?"
                        )
                    continue
                last_progress = time.monotonic()
                yield from self._split_batch(consumer, messages, wanted)
        finally:
            consumer.close()

    def _split_batch(
        self, consumer: Consumer, messages: list[Message], wanted: dict[int, PartitionRange]
    ) -> Iterator[RecordBatch]:
        by_partition: dict[int, list[Message]] = {}
        for message in messages:
            error = message.error()
            if error is not None:
                self._raise_read_error(error, message, wanted)
            by_partition.setdefault(message.partition(), []).append(message)
        for partition, group in by_partition.items():
            planned = wanted.get(partition)
            if planned is None:
                continue  # already complete; late messages past its end are not ours
            offsets = list(map(Message.offset, group))
            keep = bisect_left(offsets, planned.end)  # offsets ascend within a partition
            if keep:
                kept = group[:keep]
                yield RecordBatch(
                    partition=partition,
                    offsets=offsets[:keep],
                    timestamps=list(map(_timestamp_ms, kept)),
                    keys=list(map(Message.key, kept)),
                    values=list(map(Message.value, kept)),
                )
            if offsets[-1] >= planned.end - 1:
                self._complete(consumer, partition, wanted)

    def _finish_passed_partitions(self, consumer: Consumer, wanted: dict[int, PartitionRange]) -> None:
        positions = consumer.position([TopicPartition(self.topic, p) for p in wanted])
        for position in positions:
            if position.offset >= wanted[position.partition].end:
                self._complete(consumer, position.partition, wanted)

    def _complete(self, consumer: Consumer, partition: int, wanted: dict[int, PartitionRange]) -> None:
        del wanted[partition]
        consumer.incremental_unassign([TopicPartition(self.topic, partition)])

    def _raise_read_error(self, error: KafkaError, message: Message, wanted: dict[int, PartitionRange]) -> None:
        partition = message.partition()
        if error.code() in (KafkaError.OFFSET_OUT_OF_RANGE, KafkaError._AUTO_OFFSET_RESET) and partition in wanted:
            planned = wanted[partition]
            raise OffsetsLostError(
                f"topic {self.topic!r} partition {partition}: planned offsets [{planned.start}, {planned.end}) "
                "are no longer in Kafka (deleted by retention); refusing to skip them"
            )
        raise KafkaAccessError(f"Kafka read of topic {self.topic!r} partition {partition} failed: {error.str()}")
