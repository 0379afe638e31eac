"""SUBTASK_BUFFER_BYTES: a subtask's memory stays bounded whatever its records' sizes, and the
files it splits off are a function of the plan and Kafka's contents alone."""

import dataclasses
import io
import itertools
import random

import polars as pl

from lineage_dagster.clients.kafka import RecordBatch
from lineage_dagster.ingest import subtask
from lineage_dagster.ingest.avro import encode_event
from lineage_dagster.ingest.subtask import _SubtaskWriter, row_group_rows
from lineage_dagster.ledger.paths import split_uri
from lineage_dagster.ledger.plan import CheckpointPlan
from lineage_dagster.ledger.protocol import commit_checkpoint
from lineage_dagster.ledger.store import InMemoryObjectStore
from lineage_dagster.ledger.verify import verify_ledger
from lineage_dagster.testing import InMemoryTopic
from tests.unit.test_checkpoint_protocol import DROPPED, LOG, OUTPUT, planner, write_subtask, written_objects

JUNK = b"\xff" * 300  # undecodable: goes to the dead-letter area with its raw bytes


class InterleavedTopic:
    """The records of `topic` in random batches that interleave partitions at random, each partition
    in offset order (what Kafka guarantees)."""

    def __init__(self, topic: InMemoryTopic, seed: int) -> None:
        self.topic, self.rng = topic, random.Random(seed)

    def read_ranges(self, ranges):
        queues = {r.partition: list(range(r.start, r.end)) for r in ranges if r.count}
        while queues:
            chunk = []
            for _ in range(self.rng.randint(1, 25)):
                if not queues:
                    break
                partition = self.rng.choice(sorted(queues))
                chunk.append((partition, queues[partition].pop(0)))
                if not queues[partition]:
                    del queues[partition]
            yield RecordBatch.at(chunk, [self.topic.values[p][o] for p, o in chunk])


def mixed_topic(partitions: int, records: int) -> InMemoryTopic:
    """Every third record is 300 bytes of junk, the rest seed records (43 bytes)."""
    topic = InMemoryTopic(partitions)
    for p in range(partitions):
        for offset in range(records):
            value = JUNK if offset % 3 == 1 else encode_event(f"00000000-0000-0000-0000-{p:04d}{offset:08d}", offset)
            topic.append(p, value)
    return topic


def with_buffer(plan: CheckpointPlan, buffer_bytes: int | None) -> CheckpointPlan:
    return dataclasses.replace(plan, buffer_bytes=buffer_bytes)


def test_a_partition_splits_where_its_payload_bytes_cross_its_share():
    topic = InMemoryTopic(1)
    for _ in range(10):
        topic.append(0, JUNK)
    plan = with_buffer(planner(topic, "run", parallelism=1)(1, {}), 1000)
    files = write_subtask(plan, 0, topic, InMemoryObjectStore())
    # Records start at byte 0, 300, 600, 900 | 1200, 1500, 1800 | 2100, 2400, 2700 of the range.
    assert [(w.uri.rsplit("/", 1)[1], [(s.start, s.end, s.record_count) for s in w.slices]) for w in files.files] == [
        ("part-00000001-0-p0-0.parquet", [(0, 4, 4)]),
        ("part-00000001-0-p0-4.parquet", [(4, 7, 3)]),
        ("part-00000001-0.parquet", [(7, 10, 3)]),
    ]
    assert all(w.kind == "dropped" for w in files.files)


def test_split_files_do_not_depend_on_how_records_arrive_and_verify():
    topic = mixed_topic(partitions=4, records=60)
    plan = with_buffer(planner(topic, "run")(1, {}), 8000)  # 4000 bytes per partition of a subtask

    def written(source) -> tuple[dict, list]:
        store = InMemoryObjectStore()
        return store.objects, [write_subtask(plan, k, source, store) for k in range(2)]

    objects, files = written(topic)
    split = [w for f in files for w in f.files if "-p" in w.uri.rsplit("/", 1)[1]]
    assert {w.kind for w in split} == {"data", "dropped"} and len(split) >= 8
    for seed in range(4):
        assert written(InterleavedTopic(topic, seed))[0] == objects

    # Per partition, the slices tile the planned range: each split range is held by a data file and
    # a dead-letter file, and every record is in exactly one of them.
    for r in plan.ranges:
        ranges = sorted({(s.start, s.end) for f in files for w in f.files for s in w.slices if s.partition == r.partition})
        assert ranges[0][0] == r.start and ranges[-1][1] == r.end
        assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    store = InMemoryObjectStore()
    store.objects.update(objects)
    commit_checkpoint(store, LOG, plan, files, run_id="run", own_run_ids={"run"}, committed_at_ms=5)
    report = verify_ledger(store, LOG, [OUTPUT, DROPPED], deep=True)
    assert report.ok, report.violations
    assert (report.records, report.dropped, report.files) == (160, 80, len(objects))
    dropped = pl.concat(
        pl.read_parquet(io.BytesIO(store.objects[split_uri(w.uri)])) for f in files for w in f.files if w.kind == "dropped"
    )
    assert dropped["raw_value"].to_list() == [JUNK] * 80


def test_held_payload_stays_within_the_buffer_whatever_the_backlog():
    topic = mixed_topic(partitions=4, records=600)  # 250 a partition: the plan's cap is 1000
    plan = with_buffer(planner(topic, "run")(1, {}), 8000)
    writer = _SubtaskWriter(plan=plan, subtask=0, store=InMemoryObjectStore(), output=OUTPUT, dropped=DROPPED)
    most_held = 0
    for batch in InterleavedTopic(topic, seed=1).read_ranges(writer.ranges):
        writer.add_batch(batch, max_record_bytes=1000)
        held = sum(frame["raw_value"].bin.size().sum() for frame in writer.frames["dropped"])
        held += 43 * sum(frame.height for frame in writer.frames["data"])
        most_held = max(most_held, held)
    # 2 partitions x (their 4000-byte share + the record that crosses it)
    assert 0 < most_held <= 8000 + 2 * len(JUNK)
    assert sum(w.record_count for w in writer.finish().files) == sum(r.count for r in writer.ranges) == 500


def test_a_plan_stored_before_the_buffer_setting_is_finished_unsplit():
    topic = mixed_topic(partitions=2, records=30)
    stored = planner(topic, "run", parallelism=1)(1, {})
    assert stored.buffer_bytes is None  # as a plan from before SUBTASK_BUFFER_BYTES reads back
    assert CheckpointPlan.from_json(stored.to_json()) == stored
    files = write_subtask(stored, 0, topic, InMemoryObjectStore())
    assert [w.uri.rsplit("/", 1)[1] for w in files.files] == ["part-00000001-0.parquet"] * 2
    bounded = with_buffer(stored, 1000)
    assert CheckpointPlan.from_json(bounded.to_json()).buffer_bytes == 1000
    assert bounded.split_bytes(0) == 500


def test_row_groups_are_bounded_by_bytes_and_files_do_not_depend_on_how_records_arrive(monkeypatch):
    large = pl.DataFrame({"kafka_offset": range(10), "raw_value": [bytes(1000)] * 10})
    chunked = pl.concat([large[:3], large[3:]], rechunk=False)
    small = pl.DataFrame({"kafka_offset": range(10), "raw_value": [b"x"] * 10})
    monkeypatch.setattr(subtask, "ROW_GROUP_BYTES", 2500)
    assert row_group_rows(large) == row_group_rows(chunked) == 2  # 1008 bytes a row
    assert row_group_rows(small) >= 10  # one group
    assert row_group_rows(large[:0]) == 1

    # Whatever the batches, the same rows go to the same groups: identical bytes, several groups.
    topic = mixed_topic(partitions=4, records=60)
    plan = planner(topic, "run")(1, {})
    objects = written_objects(plan, topic)
    assert all(written_objects(plan, InterleavedTopic(topic, seed)) == objects for seed in range(3))
    footers = [int.from_bytes(body[-8:-4], "little") for body in objects.values()]
    monkeypatch.setattr(subtask, "ROW_GROUP_BYTES", 1 << 30)
    one_group = written_objects(plan, topic)
    assert one_group.keys() == objects.keys()
    assert all(pl.read_parquet(io.BytesIO(one_group[k])).equals(pl.read_parquet(io.BytesIO(objects[k]))) for k in objects)
    assert all(f > int.from_bytes(one_group[key][-8:-4], "little") for f, key in zip(footers, objects, strict=True))


def test_rows_are_ordered_by_partition_and_offset_however_runs_arrive():
    def frame(pairs) -> pl.DataFrame:
        return pl.DataFrame(
            {"kafka_partition": [p for p, _ in pairs], "kafka_offset": [o for _, o in pairs]},
            schema={"kafka_partition": pl.Int32, "kafka_offset": pl.Int64},
        )

    long_runs = [frame([(2, o) for o in range(300)] + [(0, o) for o in range(300)]), frame([(1, o) for o in range(600)])]
    short_runs = [frame([(o % 3, 300 + o // 3) for o in range(900)])]  # a run per row: sorted, not sliced
    reordered = [frame([(0, 5), (0, 4)])]  # a partition's offsets not increasing: fully sorted
    for frames in (long_runs, long_runs + short_runs, long_runs + short_runs + reordered, [frame([]), *long_runs]):
        ordered = subtask._ordered(frames)
        assert ordered.n_chunks() == 1
        assert ordered.equals(pl.concat(frames).sort("kafka_partition", "kafka_offset"))
