"""Exact offset-range reads from the real Kafka, including readers started ahead of their step."""

import pytest
from dagster import build_init_resource_context

from lineage_dagster.clients.kafka import KafkaRecordSource
from lineage_dagster.ledger.plan import PartitionRange
from lineage_dagster.resources import build_resources


def read_offsets(batches) -> dict[int, list[int]]:
    offsets: dict[int, list[int]] = {}
    for batch in batches:
        for partition, offset in zip(batch.partitions.tolist(), batch.offsets.tolist(), strict=True):
            offsets.setdefault(partition, []).append(offset)
    return offsets


@pytest.fixture
def produced(lake):
    lake.produce(2000)
    return KafkaRecordSource(lake.client_config, lake.settings.kafka_topic)


RANGES = [PartitionRange(0, 10, 150), PartitionRange(3, 0, 7), PartitionRange(7, 55, 56), PartitionRange(9, 20, 20)]


def test_small_consume_calls_make_bounded_batches_of_exactly_the_ranges(produced):
    batches = list(produced.read_ranges(RANGES, consume_size=7, batch_size=50))
    assert read_offsets(batches) == {r.partition: list(range(r.start, r.end)) for r in RANGES if r.count}
    assert all(len(b.values) == len(b.messages) == len(b.offsets) for b in batches)
    assert max(len(b.values) for b in batches) < 50 + 7  # yielded once a batch reaches 50
    assert len(batches) >= (140 + 7 + 1) // (50 + 7)


def test_reader_started_ahead_reads_the_same_records_and_teardown_closes_the_unused(lake, produced):
    kafka = build_resources(lake.settings)["kafka"]
    expected = read_offsets(produced.read_ranges(RANGES))
    unused = [PartitionRange(1, 0, 100)]
    kafka.start_reading(RANGES)
    kafka.start_reading(unused)
    assert kafka.is_reading(list(reversed(RANGES)))  # the same ranges in any order
    assert read_offsets(kafka.read_ranges(RANGES)) == expected
    assert not kafka.is_reading(RANGES)  # a started reader is used once
    assert read_offsets(kafka.read_ranges(RANGES)) == expected  # then reads start afresh
    kafka.teardown_after_execution(build_init_resource_context())
    assert not kafka.is_reading(unused)
