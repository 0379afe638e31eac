"""Exactly-once under faults, against the real Kafka, S3 and Dagster: kill -9 at every step
boundary, a zombie racing its retry, S3 and Kafka outages, a wiped Dagster instance, retention."""

import shutil
import subprocess

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient

from lineage_dagster.ledger.paths import plan_key, subtask_log_key
from lineage_dagster.ledger.protocol import checkpoint_ids, read_marker, read_plan
from lineage_dagster.ledger.verify import verify_ledger
from tests.helpers import run_checkpoint_cli, start_checkpoint_cli, wait_for_object

KILLED = -9


def assert_exactly_once(lake, records: int) -> None:
    report = verify_ledger(lake.store, lake.commit_log, [lake.output, lake.dropped], deep=True)
    assert report.ok, report.violations
    assert report.records == records and report.rows_read == records
    assert not report.in_flight


def data_objects(lake) -> dict[tuple[str, str], bytes]:
    """Every data and dead-letter object of the test's lake, by (bucket, key)."""
    locations = (lake.output, lake.dropped)
    return {
        (location.bucket, key): lake.store.get(location.bucket, key)
        for location in locations
        for key in lake.store.list_keys(location.bucket, f"{location.prefix}/")
    }


def succeed(lake, dagster_home, **env) -> subprocess.CompletedProcess:
    result = run_checkpoint_cli(lake, dagster_home, **env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.mark.parametrize("point", ["after_plan", "during_write", "after_data", "after_log", "after_marker"])
def test_kill_9_at_each_step_boundary_then_next_run_converges(lake, dagster_home, point):
    lake.produce(3000)
    crashed = run_checkpoint_cli(lake, dagster_home, LINEAGE_FAULT=f"{point}:kill")
    assert crashed.returncode == KILLED, crashed.stderr[-2000:]
    log = lake.commit_log
    assert read_plan(lake.store, log, 1) is not None
    assert (read_marker(lake.store, log, 1) is not None) == (point == "after_marker")

    lake.produce(1000)
    succeed(lake, dagster_home)
    succeed(lake, dagster_home)
    first = read_marker(lake.store, log, 1)
    assert first.record_count == 3000, "checkpoint 1 kept its plan across the crash"
    assert read_marker(lake.store, log, 2).record_count == 1000
    assert_exactly_once(lake, 4000)


def test_zombie_racing_its_retry_commits_nothing(lake, dagster_home, tmp_path):
    lake.produce(3000)
    log = lake.commit_log
    zombie = start_checkpoint_cli(lake, dagster_home, "after_log:sleep=20")
    wait_for_object(lake, subtask_log_key(log, 1, 1), zombie)
    (tmp_path / "other-instance").mkdir()
    succeed(lake, tmp_path / "other-instance")  # the retry, from another Dagster instance even
    output, _ = zombie.communicate(timeout=120)
    assert zombie.returncode != 0
    assert "already committed by run" in output and "changed nothing" in output
    marker = read_marker(lake.store, log, 1)
    assert marker.run_id != read_plan(lake.store, log, 1).run_id, "the retry, not the zombie, committed"
    assert_exactly_once(lake, 3000)


def test_wiped_dagster_instance_resumes_from_the_s3_ledger(lake, dagster_home):
    lake.produce(2000)
    succeed(lake, dagster_home)
    lake.produce(500)
    succeed(lake, dagster_home)
    shutil.rmtree(dagster_home)
    dagster_home.mkdir()
    lake.produce(700)
    succeed(lake, dagster_home)
    third = read_marker(lake.store, lake.commit_log, 3)
    assert third is not None and third.record_count == 700
    assert_exactly_once(lake, 3200)


def test_s3_outage_mid_checkpoint_then_recovery(lake, dagster_home):
    lake.produce(3000)
    run = start_checkpoint_cli(lake, dagster_home, "after_plan:sleep=6")
    log = lake.commit_log
    wait_for_object(lake, plan_key(log, 1), run)
    lake.stack.stop("seaweedfs")
    try:
        output, _ = run.communicate(timeout=240)
        assert run.returncode != 0, "a checkpoint cannot succeed while S3 is down"
        assert "S3" in output or "Could not connect" in output
    finally:
        lake.stack.start_s3()
    assert read_marker(lake.store, log, 1) is None
    succeed(lake, dagster_home)
    assert read_marker(lake.store, log, 1).record_count == 3000
    assert_exactly_once(lake, 3000)


def test_kafka_broker_restart_mid_checkpoint(lake, dagster_home):
    lake.produce(3000)
    run = start_checkpoint_cli(lake, dagster_home, "after_plan:sleep=3")
    log = lake.commit_log
    wait_for_object(lake, plan_key(log, 1), run)
    lake.stack.stop("kafka")
    lake.stack.start_kafka()
    output, _ = run.communicate(timeout=240)
    assert run.returncode == 0, output[-3000:]
    assert_exactly_once(lake, 3000)


def delete_records(lake, partition: int, before: int) -> None:
    admin = AdminClient(lake.client_config)
    futures = admin.delete_records([TopicPartition(lake.name, partition, before)])
    for future in futures.values():
        future.result(timeout=30)


def test_offsets_deleted_before_a_retry_fail_loudly(lake, dagster_home):
    lake.produce(2000)  # 200 per partition
    crashed = run_checkpoint_cli(lake, dagster_home, LINEAGE_FAULT="after_plan:kill")
    assert crashed.returncode == KILLED
    delete_records(lake, partition=4, before=50)
    retry = run_checkpoint_cli(lake, dagster_home)
    assert retry.returncode != 0
    assert "partition 4" in retry.stdout + retry.stderr
    assert "refusing to skip" in retry.stdout + retry.stderr
    assert read_marker(lake.store, lake.commit_log, 1) is None


def test_offsets_deleted_between_checkpoints_fail_the_plan_loudly(lake, dagster_home):
    lake.produce(1000)  # 100 per partition
    succeed(lake, dagster_home)
    lake.produce(1000)
    delete_records(lake, partition=3, before=150)
    failed = run_checkpoint_cli(lake, dagster_home)
    assert failed.returncode != 0
    assert "partition 3: offsets [100, 150) were deleted" in failed.stdout + failed.stderr
    assert checkpoint_ids(lake.store, lake.commit_log) == [1], "nothing planned or written"


def test_operator_allowed_loss_is_skipped_recorded_and_verifiable(lake, dagster_home):
    lake.produce(1000)  # 100 per partition
    succeed(lake, dagster_home)
    lake.produce(1000)
    delete_records(lake, partition=3, before=150)
    succeed(lake, dagster_home, ALLOW_OFFSET_LOSS="true")
    marker = read_marker(lake.store, lake.commit_log, 2)
    assert [(r.partition, r.start, r.end) for r in marker.lost] == [(3, 100, 150)]
    assert marker.record_count == 950
    report = verify_ledger(lake.store, lake.commit_log, [lake.output, lake.dropped], deep=True)
    assert report.ok, report.violations
    assert report.records == 1950
