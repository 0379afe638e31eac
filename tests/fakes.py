"""In-memory stand-ins behind the same interfaces as the real Kafka source (the S3 one lives in
lineage_dagster.ledger.store)."""

from collections.abc import Iterator, Sequence

from lineage_dagster.clients.kafka import RecordBatch
from lineage_dagster.ingest.avro import encode_event
from lineage_dagster.ledger.plan import PartitionRange


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
        for r in ranges:
            for start in range(r.start, r.end, batch_size):
                offsets = list(range(start, min(start + batch_size, r.end)))
                yield RecordBatch(
                    partition=r.partition,
                    offsets=offsets,
                    timestamps=[1_700_000_000_000 + o for o in offsets],
                    keys=[None] * len(offsets),
                    values=[self.values[r.partition][o] for o in offsets],
                )
