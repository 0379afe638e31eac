"""In-memory stand-ins behind the same interfaces as the real Kafka source (the S3 one lives in
lineage_dagster.ledger.store)."""

from collections.abc import Iterator, Sequence

import numpy as np

from lineage_dagster.clients.kafka import RecordBatch
from lineage_dagster.ingest.avro import encode_event
from lineage_dagster.ledger.plan import PartitionRange


def records_at(coordinates: Sequence[tuple[int, int]], values: Sequence[bytes | None]) -> RecordBatch:
    """A batch of the records at (partition, offset) `coordinates`, with Kafka-like keys and timestamps."""
    return RecordBatch(
        partitions=np.array([p for p, _ in coordinates], dtype=np.int32),
        offsets=np.array([o for _, o in coordinates], dtype=np.int64),
        values=list(values),
        keys=[f"key-{p}-{o}".encode() for p, o in coordinates],
        timestamps=np.array([1_700_000_000_000 + o for _, o in coordinates], dtype=np.int64),
    )


class InMemoryTopic:
    def __init__(self, partitions: int) -> None:
        self.values: dict[int, list[bytes | None]] = {p: [] for p in range(partitions)}

    def append(self, partition: int, value: bytes | None) -> int:
        self.values[partition].append(value)
        return len(self.values[partition]) - 1

    def fill(self, per_partition: int) -> None:
        for p in self.values:
            for _ in range(per_partition):
                offset = len(self.values[p])
                self.append(p, encode_event(f"uuid-{p}-{offset}", 1_700_000_000_000 + offset))

    def watermarks(self) -> dict[int, tuple[int, int]]:
        return {p: (0, len(v)) for p, v in self.values.items()}

    def read_ranges(self, ranges: Sequence[PartitionRange], *, batch_size: int = 7) -> Iterator[RecordBatch]:
        """Like Kafka: batches mix partitions, each partition in offset order."""
        pending = [(r.partition, o) for o in range(max((r.count for r in ranges), default=0)) for r in ranges if o < r.count]
        pending = [(p, next(r.start for r in ranges if r.partition == p) + i) for p, i in pending]
        for start in range(0, len(pending), batch_size):
            chunk = pending[start : start + batch_size]
            yield records_at(chunk, [self.values[p][o] for p, o in chunk])
