"""The whole plan -> write -> log -> commit protocol on in-memory fakes, including retries."""

import io
import random
from datetime import UTC, datetime

import polars as pl
import pytest

from lineage_dagster.clients.kafka import RecordBatch
from lineage_dagster.ingest.subtask import write_subtask_files
from lineage_dagster.ledger.commit_log import CSV_COLUMNS, parse_csv
from lineage_dagster.ledger.paths import S3Location, marker_key, subtask_log_key
from lineage_dagster.ledger.plan import CheckpointPlan, plan_checkpoint
from lineage_dagster.ledger.protocol import (
    LedgerError,
    StaleRunError,
    commit_checkpoint,
    find_last_committed,
    resolve_plan,
)
from lineage_dagster.ledger.store import InMemoryObjectStore
from lineage_dagster.ledger.verify import parquet_row_count, verify_ledger
from lineage_dagster.testing import InMemoryTopic

OUTPUT = S3Location.parse("s3://flink-data/output")
DROPPED = S3Location.parse("s3://flink-data/dropped")
LOG = S3Location.parse("s3://flink-data/write-ahead-commit-log")
HOUR = datetime(2026, 11, 25, 20, tzinfo=UTC)


def planner(topic: InMemoryTopic, run_id: str, parallelism: int = 2):
    def make_plan(checkpoint_id: int, committed_ends: dict[int, int]) -> CheckpointPlan:
        return plan_checkpoint(
            checkpoint_id=checkpoint_id,
            topic="lineage-input",
            hour=HOUR,
            committed_ends=committed_ends,
            watermarks=topic.watermarks(),
            max_records=1000,
            parallelism=parallelism,
            run_id=run_id,
            planned_at_ms=1,
        )

    return make_plan


def run_checkpoint(store, topic, run_id, hint=None):
    resolved = resolve_plan(store, LOG, hint, planner(topic, run_id))
    return resolved, [write_subtask(resolved.plan, k, topic, store) for k in range(2)]


def write_subtask(plan, subtask, source, store):
    return write_subtask_files(
        plan=plan, subtask=subtask, source=source, store=store, output=OUTPUT, dropped=DROPPED, max_record_bytes=1000
    )


def commit(store, resolved, files, run_id):
    return commit_checkpoint(store, LOG, resolved.plan, files, run_id=run_id, own_run_ids={run_id}, committed_at_ms=5)


def test_consecutive_checkpoints_are_contiguous_and_verify():
    store, topic = InMemoryObjectStore(), InMemoryTopic(4)
    topic.produce(10 * len(topic.values))
    first, files = run_checkpoint(store, topic, "r1")
    commit(store, first, files, "r1")
    topic.produce(5 * len(topic.values))
    second, files = run_checkpoint(store, topic, "r2", hint=1)
    commit(store, second, files, "r2")
    assert second.plan.checkpoint_id == 2
    assert all(r.start == 10 and r.end == 15 for r in second.plan.ranges)
    report = verify_ledger(store, LOG, [OUTPUT, DROPPED], deep=True)
    assert report.ok, report.violations
    assert (report.checkpoints, report.records, report.rows_read) == (2, 60, 60)


def test_commit_log_csv_has_seed_columns_first_and_one_row_per_partition_slice():
    store, topic = InMemoryObjectStore(), InMemoryTopic(4)
    topic.produce(3 * len(topic.values))
    resolved, files = run_checkpoint(store, topic, "r1")
    commit(store, resolved, files, "r1")
    raw = store.get("flink-data", subtask_log_key(LOG, 1, 0))
    assert raw.decode().splitlines()[0].split(",")[:3] == ["checkpoint_id", "s3_key", "commit_timestamp"]
    rows = parse_csv(raw)
    assert len(CSV_COLUMNS) == 11
    assert [(r.kafka_partition, r.start_offset, r.end_offset, r.record_count) for r in rows] == [(0, 0, 3, 3), (2, 0, 3, 3)]
    assert {r.s3_key for r in rows} == {"s3://flink-data/output/year=2026/month=11/day=25/hour=20/part-00000001-0.parquet"}


def test_retry_reuses_stored_plan_and_writes_identical_bytes():
    store, topic = InMemoryObjectStore(), InMemoryTopic(2)
    topic.produce(5 * len(topic.values))
    crashed, _ = run_checkpoint(store, topic, "crashed")
    before = dict(store.objects)
    topic.produce(5 * len(topic.values))  # more data arrived; the retry must not re-plan
    retry, retry_files = run_checkpoint(store, topic, "retry")
    assert retry.reused and retry.plan == crashed.plan
    assert store.objects == before
    commit(store, retry, retry_files, "retry")
    assert find_last_committed(store, LOG, None).run_id == "retry"


class ShuffledTopic:
    """The same records as `topic`, delivered in random batches and random order."""

    def __init__(self, topic: InMemoryTopic, seed: int) -> None:
        self.topic, self.rng = topic, random.Random(seed)

    def read_ranges(self, ranges):
        records = [
            ((int(p), int(o)), v)
            for batch in self.topic.read_ranges(ranges)
            for p, o, v in zip(batch.partitions, batch.offsets, batch.values, strict=True)
        ]
        self.rng.shuffle(records)
        while records:
            size = self.rng.randint(1, 40)
            chunk, records = records[:size], records[size:]
            yield RecordBatch.at([r[0] for r in chunk], [r[1] for r in chunk])


def written_objects(plan: CheckpointPlan, source) -> dict[str, bytes]:
    """What every subtask of `plan` writes, read from `source`, in a store of its own."""
    store = InMemoryObjectStore()
    for k in range(plan.parallelism):
        write_subtask(plan, k, source, store)
    return store.objects


def test_file_bytes_do_not_depend_on_how_records_arrive():
    topic = InMemoryTopic(4)
    topic.produce(60 * len(topic.values))
    plan = planner(topic, "run")(1, {})
    in_order = written_objects(plan, topic)
    assert len(in_order) == 2
    for seed in range(5):
        assert written_objects(plan, ShuffledTopic(topic, seed)) == in_order


def test_zombie_cannot_commit_after_the_winner():
    store, topic = InMemoryObjectStore(), InMemoryTopic(2)
    topic.produce(5 * len(topic.values))
    resolved, files = run_checkpoint(store, topic, "zombie")
    commit(store, resolved, files, "winner")
    marker_before = store.get("flink-data", marker_key(LOG, 1))
    with pytest.raises(StaleRunError, match="already committed by run winner"):
        commit(store, resolved, files, "zombie")
    assert store.get("flink-data", marker_key(LOG, 1)) == marker_before


def test_commit_refuses_files_that_do_not_cover_the_plan():
    store, topic = InMemoryObjectStore(), InMemoryTopic(2)
    topic.produce(5 * len(topic.values))
    resolved, files = run_checkpoint(store, topic, "r1")
    with pytest.raises(LedgerError, match="partition 1: planned 5 records"):
        commit(store, resolved, files[:1], "r1")
    assert store.get("flink-data", marker_key(LOG, 1)) is None


def test_bad_records_go_to_dropped_and_are_accounted():
    store, topic = InMemoryObjectStore(), InMemoryTopic(2)
    topic.produce(3 * len(topic.values))
    topic.append(0, b"\xff\xff\xff")
    topic.append(1, None)
    topic.produce(2 * len(topic.values))
    resolved, files = run_checkpoint(store, topic, "r1")
    marker = commit(store, resolved, files, "r1")
    assert (marker.record_count, marker.dropped_count) == (10, 2)
    dropped_key = "dropped/year=2026/month=11/day=25/hour=20/part-00000001-0.parquet"
    import io

    dropped = pl.read_parquet(io.BytesIO(store.get("flink-data", dropped_key)))
    assert dropped.select("kafka_partition", "kafka_offset").rows() == [(0, 3)]
    assert dropped["raw_value"][0] == b"\xff\xff\xff"
    assert verify_ledger(store, LOG, [OUTPUT, DROPPED], deep=True).ok


def test_ledger_alone_resumes_after_dagster_forgets():
    store, topic = InMemoryObjectStore(), InMemoryTopic(2)
    topic.produce(5 * len(topic.values))
    for run in ("r1", "r2", "r3"):
        resolved, files = run_checkpoint(store, topic, run)
        commit(store, resolved, files, run)
        topic.produce(1 * len(topic.values))
    assert find_last_committed(store, LOG, None).checkpoint_id == 3
    assert find_last_committed(store, LOG, 1).checkpoint_id == 3  # Dagster's hint lagging behind S3
    with pytest.raises(LedgerError, match="WRITE_AHEAD_COMMIT_LOG_PATH"):
        find_last_committed(store, LOG, 9)


def test_verify_reports_a_missing_file_and_an_orphan():
    store, topic = InMemoryObjectStore(), InMemoryTopic(2)
    topic.produce(5 * len(topic.values))
    resolved, files = run_checkpoint(store, topic, "r1")
    commit(store, resolved, files, "r1")
    del store.objects[("flink-data", "output/year=2026/month=11/day=25/hour=20/part-00000001-1.parquet")]
    store.put("flink-data", "output/year=2026/month=11/day=25/hour=20/stray.parquet", b"x")
    report = verify_ledger(store, LOG, [OUTPUT, DROPPED])
    assert not report.ok
    assert any("part-00000001-1.parquet is listed but does not exist" in v for v in report.violations)
    assert any("stray.parquet is in the lake but in no committed checkpoint" in v for v in report.violations)


def test_deep_verify_finds_a_duplicated_and_a_missing_record():
    store, topic = InMemoryObjectStore(), InMemoryTopic(2)
    for run_id in ("r1", "r2"):
        topic.produce(5 * len(topic.values))
        resolved, files = run_checkpoint(store, topic, run_id)
        commit(store, resolved, files, run_id)
    assert verify_ledger(store, LOG, [OUTPUT, DROPPED], deep=True).ok
    key = ("flink-data", "output/year=2026/month=11/day=25/hour=20/part-00000002-0.parquet")
    frame = pl.read_parquet(store.objects[key])
    offsets = frame["kafka_offset"].to_list()
    offsets[0] = 3  # partition 0, offset 3 was committed by checkpoint 1; offset 5 is now missing
    out = io.BytesIO()
    frame.with_columns(pl.Series("kafka_offset", offsets)).write_parquet(out)
    store.objects[key] = out.getvalue()
    report = verify_ledger(store, LOG, [OUTPUT, DROPPED], deep=True)
    assert any(
        "partition 0: committed ranges hold 10 offsets, the files hold 10 rows, 9 distinct" in v for v in report.violations
    )
    assert any("partition 0: 1 offsets appear more than once, e.g. [3]" in v for v in report.violations)


def test_nothing_new_plans_nothing_and_leaves_no_trace():
    store, topic = InMemoryObjectStore(), InMemoryTopic(2)
    topic.produce(3 * len(topic.values))
    first, files = run_checkpoint(store, topic, "run-1")
    commit(store, first, files, "run-1")
    before = dict(store.objects)

    idle = resolve_plan(store, LOG, 1, planner(topic, "run-2"))
    assert idle.nothing_new and idle.plan.checkpoint_id == 2 and idle.plan.record_count == 0
    assert store.objects == before

    topic.produce(1 * len(topic.values))
    second = resolve_plan(store, LOG, 1, planner(topic, "run-3"))
    assert not second.nothing_new and second.plan.checkpoint_id == 2 and second.plan.record_count == 2
    assert set(store.objects) - set(before) == {("flink-data", "write-ahead-commit-log/chk-2/_plan.json")}


def test_parquet_row_count_reads_only_the_footer():
    store = InMemoryObjectStore()
    small, many_groups = io.BytesIO(), io.BytesIO()
    pl.DataFrame({"x": range(1000)}).write_parquet(small)
    pl.DataFrame({"x": range(5000), "y": [str(i) for i in range(5000)]}).write_parquet(many_groups, row_group_size=10)
    assert int.from_bytes(many_groups.getvalue()[-8:-4], "little") > 64 * 1024  # its footer needs a second read
    corrupt_footer = io.BytesIO(b"x" * 40 + (16).to_bytes(4, "little") + b"PAR1")
    garbage = io.BytesIO(b"not parquet at all")
    for key, body in (("small", small), ("many_groups", many_groups), ("garbage", garbage), ("corrupt", corrupt_footer)):
        store.put("flink-data", key, body.getvalue())
    assert parquet_row_count(store, "s3://flink-data/small") == 1000
    assert parquet_row_count(store, "s3://flink-data/many_groups") == 5000
    assert parquet_row_count(store, "s3://flink-data/garbage") is None
    assert parquet_row_count(store, "s3://flink-data/corrupt") is None
    assert parquet_row_count(store, "s3://flink-data/missing") is None
