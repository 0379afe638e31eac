"""In-memory Kafka and S3 behind the pipeline's own resources, for tests without any service:

    resources = in_memory_resources()
    resources["kafka"].produce(1000)
    instance = DagsterInstance.ephemeral()
    result = materialize_to_memory(
        build_checkpoint_assets(parallelism=2),
        instance=instance,
        resources=resources,
        partition_key=current_hour_partition(instance),
    )

Dagster builds a resource again from its fields for every run, so the topic and the objects live in
this module, found by the resource's `memory_key`; two runs with the same resource see the same data.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

from dagster import DagsterInstance
from pydantic import Field

from lineage_dagster.assets.checkpoint import CHECKPOINT_HOURS
from lineage_dagster.clients.kafka import RecordBatch
from lineage_dagster.ingest.avro import encode_event
from lineage_dagster.ledger.paths import hour_key
from lineage_dagster.ledger.plan import PartitionRange
from lineage_dagster.ledger.store import InMemoryObjectStore
from lineage_dagster.resources.kafka import KafkaResource
from lineage_dagster.resources.lake import LakeResource
from lineage_dagster.resources.limits import CheckpointLimits

_TOPICS: dict[str, InMemoryTopic] = {}
_STORES: dict[str, InMemoryObjectStore] = {}


def _new_key() -> str:
    return uuid.uuid4().hex


class InMemoryTopic:
    """A Kafka topic in memory: partitions of payloads at offsets 0, 1, ...; read like Kafka, in
    batches that mix partitions, each partition in offset order."""

    def __init__(self, partitions: int) -> None:
        self.values: dict[int, list[bytes | None]] = {p: [] for p in range(partitions)}

    def append(self, partition: int, value: bytes | None) -> int:
        self.values[partition].append(value)
        return len(self.values[partition]) - 1

    def produce(self, count: int) -> None:
        """`count` seed-schema events, dealt to the partitions round-robin."""
        for n in range(count):
            partition = n % len(self.values)
            offset = len(self.values[partition])
            self.append(partition, encode_event(f"uuid-{partition}-{offset}", 1_700_000_000_000 + offset))

    def watermarks(self) -> dict[int, tuple[int, int]]:
        return {p: (0, len(v)) for p, v in self.values.items()}

    def read_ranges(self, ranges: Sequence[PartitionRange], *, batch_size: int = 7) -> Iterator[RecordBatch]:
        pending = [
            (r.partition, r.start + i) for i in range(max((r.count for r in ranges), default=0)) for r in ranges if i < r.count
        ]
        for start in range(0, len(pending), batch_size):
            chunk = pending[start : start + batch_size]
            yield RecordBatch.at(chunk, [self.values[p][o] for p, o in chunk])


class InMemoryKafkaResource(KafkaResource):
    """`KafkaResource` on an in-memory topic."""

    bootstrap_servers: str = "in-memory"
    topic: str = "lineage-input"
    partitions: int = Field(default=10, ge=1, description="partitions of the in-memory topic")
    memory_key: str = Field(default_factory=_new_key, description="which in-memory topic (one per resource)")

    @property
    def memory_topic(self) -> InMemoryTopic:
        return _TOPICS.setdefault(self.memory_key, InMemoryTopic(self.partitions))

    def produce(self, count: int) -> None:
        self.memory_topic.produce(count)

    def record_source(self) -> InMemoryTopic:  # type: ignore[override]
        return self.memory_topic


class InMemoryLakeResource(LakeResource):
    """`LakeResource` on an in-memory object store (buckets need not be created)."""

    memory_key: str = Field(default_factory=_new_key, description="which in-memory store (one per resource)")

    def store(self) -> InMemoryObjectStore:  # type: ignore[override]
        return _STORES.setdefault(self.memory_key, InMemoryObjectStore())


def current_hour_partition(instance: DagsterInstance) -> str:
    """The current hour's partition of the checkpoint assets, added to `instance` as the schedule does."""
    key = hour_key(datetime.now(UTC))
    instance.add_dynamic_partitions(CHECKPOINT_HOURS.name, [key])
    return key


def in_memory_resources(partitions: int = 10, limits: CheckpointLimits | None = None) -> dict:
    """`kafka`, `lake` and `limits` for `materialize_to_memory`, on a fresh in-memory topic and store."""
    return {
        "kafka": InMemoryKafkaResource(partitions=partitions),
        "lake": InMemoryLakeResource(),
        "limits": limits or CheckpointLimits(),
    }
