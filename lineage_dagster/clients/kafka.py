"""Reading exact offset ranges from Kafka with confluent-kafka, and topic metadata.

numpy is imported by the functions that read records, not here: every process that loads the
code location imports this module (webserver, daemon, each run), and most runs read no records
(numpy is a noticeable part of loading the definitions).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from lineage_dagster.clients.kafka_errors import ClientDiagnostics, explain_connection_failure
from lineage_dagster.ledger.plan import OffsetsLostError, PartitionRange

if TYPE_CHECKING:
    import numpy as np

# Errors seen while a partition leader is (re-)elected: after topic creation or a broker restart.
_TRANSIENT = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError.REQUEST_TIMED_OUT,
    KafkaError._TRANSPORT,
    KafkaError._TIMED_OUT,
}


# Prefetch is bounded: on a backlog it fills with records past the range, so a larger queue costs
# memory with large records and buys no speed. Fetching resumes soon after the queue drains, not
# after librdkafka's default second, which stalls large ranges. Large fetch responses: smaller ones
# save a little memory but cost round trips to a broker that shares the machine's cores.
RANGE_READ_TUNING: dict[str, int] = {
    "queued.min.messages": 20_000,
    "queued.max.messages.kbytes": 32768,
    "fetch.queue.backoff.ms": 10,
    "fetch.max.bytes": 16 * 1024 * 1024,
    "fetch.wait.max.ms": 50,
}


# Messages per `consume` call. Small calls are cheaper per message than large ones: each call's
# Message objects are still in the CPU cache when their columns are read. And below Python's
# young-generation threshold (700 container objects), a call's messages are freed before the
# cyclic GC ever runs on them; larger calls had them promoted, setting off full collections of
# every object a Dagster run process holds. A call returns once it has its count, collecting what
# librdkafka fetches meanwhile, so the count also follows the payload size: about CONSUME_BYTES a
# call, starting from one message.
CONSUME_SIZE = 500
CONSUME_BYTES = 4 * 1024 * 1024
# Records per yielded batch (one decode call each): larger batches' payloads have left the CPU
# cache by the time they are decoded. A batch of large payloads ends
# at BATCH_BYTES, so a batch's memory is bounded whatever the record size: its payloads, their
# join, and the decoder's copy, ~3x BATCH_BYTES.
BATCH_SIZE = 20_000
BATCH_BYTES = 8 * 1024 * 1024


_TIMESTAMP_MS = itemgetter(1)  # Message.timestamp() is (type, epoch ms)


class KafkaAccessError(RuntimeError):
    """Kafka could not be reached or the topic is unusable; the message names the setting to fix."""


@dataclass
class RecordBatch:
    """Records of consume calls, as columns: each message is touched once, by C-level `map`s.

    The Message objects themselves are not kept. Python's cyclic GC tracks them, and holding a
    batch's worth alive until it is decoded moved them all into the oldest generation, setting off
    a full collection of every object Dagster had loaded every few batches (in a run process, about
    as much CPU as the reading itself). Keys and timestamps, which only dead-letter rows need, are
    copied out instead. The payloads are also joined back to back as the batch is built, while they
    are still in the CPU cache: the decoder reads them from there, and their length is the batch's
    size in bytes.
    """

    partitions: np.ndarray  # int32
    offsets: np.ndarray  # int64
    values: list[bytes | None]
    keys: list[bytes | None]
    timestamps: np.ndarray  # int64, Kafka's timestamps (epoch ms)
    payload_bytes: bytes = field(default=b"", repr=False)  # the non-null values back to back

    def __post_init__(self) -> None:
        if not self.payload_bytes:
            self.payload_bytes = joined_payloads(self.values)

    @classmethod
    def at(cls, coordinates: Sequence[tuple[int, int]], values: Sequence[bytes | None]) -> RecordBatch:
        """The records at (partition, offset) `coordinates`, with Kafka-like keys and timestamps (for
        in-memory topics)."""
        import numpy as np

        return cls(
            partitions=np.array([p for p, _ in coordinates], dtype=np.int32),
            offsets=np.array([o for _, o in coordinates], dtype=np.int64),
            values=list(values),
            keys=[f"key-{p}-{o}".encode() for p, o in coordinates],
            timestamps=np.array([1_700_000_000_000 + o for _, o in coordinates], dtype=np.int64),
        )

    @classmethod
    def concat(cls, batches: Sequence[RecordBatch]) -> RecordBatch:
        import numpy as np

        if len(batches) == 1:
            return batches[0]
        return cls(
            partitions=np.concatenate([b.partitions for b in batches]),
            offsets=np.concatenate([b.offsets for b in batches]),
            values=list(chain.from_iterable(b.values for b in batches)),
            keys=list(chain.from_iterable(b.keys for b in batches)),
            timestamps=np.concatenate([b.timestamps for b in batches]),
            payload_bytes=b"".join(b.payload_bytes for b in batches),
        )


def joined_payloads(values: Sequence[bytes | None]) -> bytes:
    """The values back to back, tombstones (None) left out."""
    try:
        return b"".join(values)  # type: ignore[arg-type]
    except TypeError:
        return b"".join(v for v in values if v is not None)


class KafkaRecordSource:
    """Watermarks and exact `[start, end)` reads of one topic."""

    def __init__(self, client_config: dict[str, str], topic: str, *, timeout_s: float = 10.0) -> None:
        self.client_config = client_config
        self.topic = topic
        self.timeout_s = timeout_s

    def _consumer(self, diagnostics: ClientDiagnostics | None = None, **extra: Any) -> Consumer:
        config: dict[str, Any] = {
            **self.client_config,
            # librdkafka's errors and log lines go to `diagnostics`, not by the hundred to stderr.
            **(diagnostics or ClientDiagnostics()).client_config(),
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

    def _topic_metadata(self, consumer: Consumer, diagnostics: ClientDiagnostics) -> Any:
        """The topic's metadata; fails at once on a refused login or certificate, and after
        `timeout_s` on a broker that does not answer, saying which setting to fix."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                return consumer.list_topics(self.topic, timeout=1.0)
            except KafkaException:
                consumer.poll(0)  # hands over the errors and log lines librdkafka queued meanwhile
                message, certain = explain_connection_failure(diagnostics.messages, self.client_config)
                if certain or time.monotonic() > deadline:
                    raise KafkaAccessError(message) from None

    def _topic_partitions(self, consumer: Consumer, diagnostics: ClientDiagnostics) -> list[int]:
        deadline = time.monotonic() + 3 * self.timeout_s
        while True:
            metadata = self._topic_metadata(consumer, diagnostics)
            topic = metadata.topics.get(self.topic)
            missing = topic is None or (topic.error is not None and topic.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART)
            if missing:
                raise KafkaAccessError(f"Kafka topic {self.topic!r} does not exist; create it or fix KAFKA_TOPIC")
            if topic.error is None and topic.partitions:
                return sorted(topic.partitions)
            if time.monotonic() > deadline:  # e.g. leaders still being elected for a new topic
                raise KafkaAccessError(f"Kafka topic {self.topic!r} is not available: {topic.error}")
            time.sleep(0.3)

    def partitions(self) -> list[int]:
        diagnostics = ClientDiagnostics()
        consumer = self._consumer(diagnostics)
        try:
            return self._topic_partitions(consumer, diagnostics)
        finally:
            consumer.close()

    def watermarks(self) -> dict[int, tuple[int, int]]:
        """Low and high watermark of every partition of the topic.

        Retries briefly on errors Kafka marks retriable (a leader moving after a topic is created or
        a broker restarts), so a transient election does not fail a checkpoint.
        """
        diagnostics = ClientDiagnostics()
        consumer = self._consumer(diagnostics)
        try:
            partitions = self._topic_partitions(consumer, diagnostics)
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

    def start_reading(self, ranges: Sequence[PartitionRange]) -> Consumer:
        """A consumer assigned to the ranges' start offsets, tuned for reading them through."""
        consumer = self._consumer(**RANGE_READ_TUNING)
        consumer.assign([TopicPartition(self.topic, r.partition, r.start) for r in ranges if r.count > 0])
        return consumer

    def read_ranges(
        self,
        ranges: Sequence[PartitionRange],
        *,
        batch_size: int = BATCH_SIZE,
        consume_size: int = CONSUME_SIZE,
    ) -> Iterator[RecordBatch]:
        """Yield every record in the ranges, each partition in offset order, then stop.

        Messages are taken from the consumer `consume_size` at a time and turned into columns while
        they are still in the CPU cache, then yielded in batches of up to `batch_size` records.

        Fails loudly if a start offset is gone (retention) rather than skipping to what is left.
        An offset missing inside a range (compaction, transaction markers) is skipped over once the
        consumer's position has passed the range's end.
        """
        import numpy as np

        wanted = {r.partition: r for r in ranges if r.count > 0}
        if not wanted:
            return
        size = max(wanted) + 1
        ends = np.full(size, -1, dtype=np.int64)  # -1: not (or no longer) wanted
        nexts = np.zeros(size, dtype=np.int64)  # next offset expected per partition
        for r in wanted.values():
            ends[r.partition], nexts[r.partition] = r.end, r.start
        consumer = self.start_reading(ranges)
        pending: list[RecordBatch] = []
        pending_records = pending_bytes = 0
        count = 1
        try:
            last_progress = time.monotonic()
            while wanted:
                # Ask for no more than what is left: `consume` waits for the full count until its
                # timeout, so asking for more would stall every range's last batch.
                remaining = int(sum(ends[p] - nexts[p] for p in wanted))
                messages = consumer.consume(num_messages=max(1, min(count, remaining)), timeout=0.5)
                if not messages:
                    self._finish_passed_partitions(consumer, wanted, ends)
                    if wanted and time.monotonic() - last_progress > 6 * self.timeout_s:
                        raise KafkaAccessError(
                            f"no records from topic {self.topic!r} partitions {sorted(wanted)} for "
                            f"{6 * self.timeout_s:.0f}s; is the broker at KAFKA_BOOTSTRAP_SERVERS up?"
                        )
                    continue
                last_progress = time.monotonic()
                chunk = self._columns(messages, wanted, ends, nexts)
                if chunk is not None:
                    chunk_bytes = len(chunk.payload_bytes)
                    count = min(consume_size, max(1, CONSUME_BYTES * len(chunk.values) // max(chunk_bytes, 1)))
                    pending.append(chunk)
                    pending_records += len(chunk.values)
                    pending_bytes += chunk_bytes
                if pending_records >= batch_size or pending_bytes >= BATCH_BYTES:
                    # The calls' own joins are dropped before the batch is used, not after.
                    batch, pending, pending_records, pending_bytes = RecordBatch.concat(pending), [], 0, 0
                    yield batch
                    del batch
            if pending:
                batch, pending = RecordBatch.concat(pending), []  # as above
                yield batch
        finally:
            consumer.close()

    def _columns(
        self, messages: list[Message], wanted: dict[int, PartitionRange], ends: np.ndarray, nexts: np.ndarray
    ) -> RecordBatch | None:
        import numpy as np

        if any(map(Message.error, messages)):
            message = next(m for m in messages if m.error() is not None)
            self._raise_read_error(message.error(), message, wanted)
        count = len(messages)
        partitions = np.fromiter(map(Message.partition, messages), dtype=np.int32, count=count)
        offsets = np.fromiter(map(Message.offset, messages), dtype=np.int64, count=count)
        limit = ends[np.minimum(partitions, len(ends) - 1)]
        keep = (partitions < len(ends)) & (offsets < limit)
        highest = np.full(len(ends), -1, dtype=np.int64)
        np.maximum.at(highest, partitions[partitions < len(ends)], offsets[partitions < len(ends)])
        np.maximum(nexts, highest + 1, out=nexts)
        for partition in [p for p in wanted if highest[p] >= ends[p] - 1]:
            self._complete(partition, wanted, ends)
        if not keep.all():  # late records past a range's end (or of a finished partition)
            rows = np.flatnonzero(keep)
            messages = [messages[i] for i in rows]
            partitions, offsets = partitions[rows], offsets[rows]
        if not messages:
            return None
        return RecordBatch(
            partitions=partitions,
            offsets=offsets,
            values=list(map(Message.value, messages)),
            keys=list(map(Message.key, messages)),
            timestamps=np.fromiter(map(_TIMESTAMP_MS, map(Message.timestamp, messages)), dtype=np.int64, count=len(messages)),
        )

    def _finish_passed_partitions(self, consumer: Consumer, wanted: dict[int, PartitionRange], ends: np.ndarray) -> None:
        positions = consumer.position([TopicPartition(self.topic, p) for p in wanted])
        for position in positions:
            if position.offset >= wanted[position.partition].end:
                self._complete(position.partition, wanted, ends)

    def _complete(self, partition: int, wanted: dict[int, PartitionRange], ends: np.ndarray) -> None:
        """Stop wanting a partition; its later messages are dropped by the `ends` mask.

        (No unassign: with fetch-ahead, librdkafka may still deliver a few of its messages.)"""
        del wanted[partition]
        ends[partition] = -1

    def _raise_read_error(self, error: KafkaError, message: Message, wanted: dict[int, PartitionRange]) -> None:
        partition = message.partition()
        if error.code() in (KafkaError.OFFSET_OUT_OF_RANGE, KafkaError._AUTO_OFFSET_RESET) and partition in wanted:
            planned = wanted[partition]
            raise OffsetsLostError(
                f"topic {self.topic!r} partition {partition}: planned offsets [{planned.start}, {planned.end}) "
                "are no longer in Kafka (deleted by retention); refusing to skip them"
            )
        raise KafkaAccessError(f"Kafka read of topic {self.topic!r} partition {partition} failed: {error.str()}")
