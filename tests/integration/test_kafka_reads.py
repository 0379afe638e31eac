"""Exact offset-range reads from the real Kafka."""

import pytest

from lineage_dagster.clients.kafka import KafkaRecordSource
from lineage_dagster.ledger.plan import PartitionRange


def read_offsets(batches) -> dict[int, list[int]]:
    offsets: dict[int, list[int]] = {}
    for batch in batches:
        for partition, offset in zip(batch.partitions.tolist(), batch.offsets.tolist(), strict=True):
            offsets.setdefault(partition, []).append(offset)
    return offsets


@pytest.fixture
def produced(lake):
    lake.produce(2000)
    return KafkaRecordSource(lake.client_config, lake.name)


RANGES = [PartitionRange(0, 10, 150), PartitionRange(3, 0, 7), PartitionRange(7, 55, 56), PartitionRange(9, 20, 20)]


def test_small_consume_calls_make_bounded_batches_of_exactly_the_ranges(produced):
    batches = list(produced.read_ranges(RANGES, consume_size=7, batch_size=50))
    assert read_offsets(batches) == {r.partition: list(range(r.start, r.end)) for r in RANGES if r.count}
    assert all(len(b.values) == len(b.keys) == len(b.timestamps) == len(b.offsets) for b in batches)
    assert all((b.timestamps > 1_700_000_000_000).all() for b in batches), "Kafka's timestamps, in epoch ms"
    assert max(len(b.values) for b in batches) < 50 + 7  # yielded once a batch reaches 50
    assert len(batches) >= (140 + 7 + 1) // (50 + 7)
