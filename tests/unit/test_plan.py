import dataclasses
import json
from datetime import UTC, datetime

import pytest

from lineage_dagster.ledger.plan import (
    CheckpointPlan,
    OffsetsLostError,
    PartitionRange,
    SettingsMismatchError,
    backlog,
    check_settings,
    plan_checkpoint,
    share_records,
    subtask_of_partition,
)

HOUR = datetime(2026, 11, 25, 20, tzinfo=UTC)


def make_plan(committed, watermarks, max_records=1_000_000, parallelism=2, checkpoint_id=1):
    return plan_checkpoint(
        checkpoint_id=checkpoint_id,
        topic="t",
        hour=HOUR,
        committed_ends=committed,
        watermarks=watermarks,
        max_records=max_records,
        parallelism=parallelism,
        run_id="run-1",
        planned_at_ms=1,
    )


def test_first_plan_starts_at_low_watermark_and_ends_at_high():
    plan = make_plan({}, {0: (0, 10), 1: (5, 7)})
    assert plan.ranges == (PartitionRange(0, 0, 10), PartitionRange(1, 5, 7))
    assert plan.record_count == 12


def test_next_plan_starts_where_last_commit_ended():
    plan = make_plan({0: 10, 1: 7}, {0: (0, 15), 1: (5, 7)})
    assert plan.ranges == (PartitionRange(0, 10, 15), PartitionRange(1, 7, 7))
    assert plan.end_offsets() == {0: 15, 1: 7}


def test_new_partition_is_read_from_its_earliest_offset():
    plan = make_plan({0: 10}, {0: (0, 10), 1: (3, 9)})
    assert plan.ranges[1] == PartitionRange(1, 3, 9)


def test_deleted_offsets_fail_loudly_naming_partition_and_range():
    with pytest.raises(OffsetsLostError, match=r"partition 0: offsets \[10, 20\) were deleted"):
        make_plan({0: 10}, {0: (20, 30)})


def test_offsets_past_high_watermark_fail():
    with pytest.raises(OffsetsLostError, match="past the high watermark"):
        make_plan({0: 50}, {0: (0, 30)})


def test_cap_is_shared_fairly_and_never_exceeded():
    plan = make_plan({}, {0: (0, 1000), 1: (0, 3), 2: (0, 1000)}, max_records=101)
    counts = {r.partition: r.count for r in plan.ranges}
    assert counts == {1: 3, 0: 49, 2: 49}
    assert plan.record_count <= 101


def test_share_records_gives_everything_when_under_budget():
    assert share_records({0: 5, 1: 6}, 100) == {0: 5, 1: 6}


def test_partitions_are_dealt_round_robin_to_subtasks():
    assert [subtask_of_partition(p, 2) for p in range(4)] == [0, 1, 0, 1]
    plan = make_plan({}, {p: (0, 1) for p in range(5)}, parallelism=2)
    assert [r.partition for r in plan.ranges_for_subtask(0)] == [0, 2, 4]
    assert [r.partition for r in plan.ranges_for_subtask(1)] == [1, 3]


def test_plan_round_trips_through_json():
    plan = make_plan({0: 1}, {0: (0, 5), 1: (0, 2)})
    assert CheckpointPlan.from_json(plan.to_json()) == plan


def test_plan_keeps_the_record_size_limit_it_was_planned_with():
    plan = dataclasses.replace(make_plan({}, {0: (0, 5)}), max_record_bytes=40)
    assert CheckpointPlan.from_json(plan.to_json()).max_record_bytes == 40
    body = json.loads(plan.to_json())
    del body["max_record_bytes"]  # a plan stored before the field existed
    assert CheckpointPlan.from_json(json.dumps(body).encode()).max_record_bytes is None


def test_operator_can_skip_deleted_offsets_and_the_plan_records_them():
    plan = plan_checkpoint(
        checkpoint_id=2,
        topic="t",
        hour=HOUR,
        committed_ends={0: 10, 1: 5},
        watermarks={0: (20, 30), 1: (0, 8)},
        max_records=1000,
        parallelism=2,
        run_id="r",
        planned_at_ms=1,
        allow_offset_loss=True,
    )
    assert plan.ranges == (PartitionRange(0, 20, 30), PartitionRange(1, 5, 8))
    assert plan.lost == (PartitionRange(0, 10, 20),)
    assert CheckpointPlan.from_json(plan.to_json()) == plan


def test_loss_message_names_the_switch():
    with pytest.raises(OffsetsLostError, match="ALLOW_OFFSET_LOSS=true"):
        make_plan({0: 10}, {0: (20, 30)})


def test_backlog_counts_records_past_committed_ends():
    watermarks = {0: (0, 100), 1: (40, 90), 2: (0, 10)}
    assert backlog({}, watermarks) == 100 + 50 + 10  # never committed: from the earliest offset
    assert backlog({0: 60, 1: 90, 2: 10}, watermarks) == 40
    assert backlog({0: 100, 1: 10, 2: 10}, watermarks) == 50  # deleted offsets are not waiting


def test_a_plan_fixes_where_its_files_go_and_a_step_configured_otherwise_is_refused():
    plan = dataclasses.replace(
        make_plan({}, {0: (0, 5)}),
        output_path="s3://b/out",
        dropped_path="s3://b/dropped",
        commit_log_path="s3://b/log",
    )
    stored = CheckpointPlan.from_json(plan.to_json())
    assert stored == plan
    here = {
        "KAFKA_TOPIC": "t",
        "PARALLELISM": "2",
        "OUTPUT_PATH": "s3://b/out",
        "DROPPED_PATH": "s3://b/dropped",
        "WRITE_AHEAD_COMMIT_LOG_PATH": "s3://b/log",
    }
    check_settings(here, stored.planned_with(), context="checkpoint_id=1", source="when it was planned")
    elsewhere = {**here, "OUTPUT_PATH": "s3://b/other", "PARALLELISM": "4"}
    with pytest.raises(SettingsMismatchError) as refused:
        check_settings(elsewhere, stored.planned_with(), context="checkpoint_id=1", source="when it was planned")
    assert str(refused.value).startswith(
        "checkpoint_id=1: PARALLELISM='4' here but '2' when it was planned; "
        "OUTPUT_PATH='s3://b/other' here but 's3://b/out' when it was planned. Nothing was written."
    )


def test_plans_stored_before_their_paths_were_recorded_check_topic_and_parallelism_only():
    body = json.loads(make_plan({}, {0: (0, 5)}).to_json())
    for name in ("output_path", "dropped_path", "commit_log_path"):
        del body[name]
    old = CheckpointPlan.from_json(json.dumps(body).encode())
    assert old.planned_with() == {"KAFKA_TOPIC": "t", "PARALLELISM": "2"}
