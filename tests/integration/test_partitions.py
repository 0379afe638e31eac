"""The checkpoint assets' partitions are the hours checkpoints land in: a run for another hour's
partition (picked in the UI, a backfill, the CLI) is refused before it plans or writes anything,
while an unfinished plan is still finished by a run for its own hour."""

import subprocess
from datetime import UTC, datetime

from dagster import DagsterInstance, DagsterRunStatus, materialize_to_memory

from lineage_dagster.assets import CHECKPOINT_HOURS, build_checkpoint_assets
from lineage_dagster.ledger.paths import hour_key
from lineage_dagster.ledger.protocol import read_marker
from tests.helpers import BIN, store_crashed_plan

PAST = "2024-01-01-00:00"
MATERIALIZE_PAST = ["--select", "checkpoint_plan,enriched_events,write_ahead_commit_log", "--partition", PAST]


def materialize(lake, instance: DagsterInstance, partition: str):
    instance.add_dynamic_partitions(CHECKPOINT_HOURS.name, [partition])
    return materialize_to_memory(
        build_checkpoint_assets(lake.parallelism),
        instance=instance,
        resources=lake.resources.dagster_resources(),
        partition_key=partition,
        raise_on_error=False,
    )


def failure_message(result) -> str:
    failures = [e for e in result.all_events if e.is_step_failure]
    assert len(failures) == 1, [e.message for e in result.all_events]
    return failures[0].step_failure_data.error.message


def written(lake) -> list[str]:
    return sorted(lake.store.list_keys("flink-data", f"{lake.name}/"))


def test_a_past_or_future_partition_plans_nothing_and_says_why(lake):
    lake.produce(100)
    instance = DagsterInstance.ephemeral()
    now = datetime.now(UTC)
    for partition in (PAST, hour_key(now.replace(year=now.year + 1))):
        result = materialize(lake, instance, partition)
        assert not result.success
        message = failure_message(result)
        assert f"this run is for partition {partition} but was launched in hour" in message, message
        assert "re-execute its run" in message and "\n" not in message.strip()
        assert instance.get_run_by_id(result.run_id).tags["dagster/retry_on_asset_or_op_failure"] == "false"
    assert written(lake) == []

    current = materialize(lake, instance, hour_key(datetime.now(UTC)))
    assert current.success
    assert read_marker(lake.store, lake.commit_log, 1).record_count == 100


def test_a_partition_that_is_not_an_hour_is_refused(lake):
    lake.produce(10)
    result = materialize(lake, DagsterInstance.ephemeral(), "yesterday")
    assert not result.success
    assert "partition 'yesterday' is not an hour like 2026-12-07-03:00; nothing written" in failure_message(result)
    assert written(lake) == []


def test_an_unfinished_plan_is_finished_only_by_its_own_hour(lake):
    store_crashed_plan(lake)  # checkpoint 1, planned in hour 2026-11-25-19:00, never committed
    lake.produce(50)
    instance = DagsterInstance.ephemeral()
    plan_objects = written(lake)

    other = materialize(lake, instance, hour_key(datetime.now(UTC)))
    assert not other.success
    assert "checkpoint 1 was planned in hour 2026-11-25-19:00 and is not committed yet" in failure_message(other)
    assert written(lake) == plan_objects

    own = materialize(lake, instance, "2026-11-25-19:00")
    assert own.success, "the stored plan is finished in its own hour, however late"
    assert read_marker(lake.store, lake.commit_log, 1).hour == "2026-11-25T19:00:00+00:00"

    again = materialize(lake, instance, "2026-11-25-19:00")
    assert not again.success, "with the plan committed, that hour is past: the 50 new records are not planned into it"
    assert "this run is for partition 2026-11-25-19:00" in failure_message(again)
    assert read_marker(lake.store, lake.commit_log, 2) is None


def test_the_cli_refuses_a_past_partition(lake, dagster_home):
    lake.produce(10)
    DagsterInstance.from_config(str(dagster_home)).add_dynamic_partitions(CHECKPOINT_HOURS.name, [PAST])
    env = {**lake.env, "PATH": str(BIN), "DAGSTER_HOME": str(dagster_home)}
    result = subprocess.run(
        [str(BIN / "dagster"), "asset", "materialize", "-m", "lineage_dagster.definitions", *MATERIALIZE_PAST],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode != 0
    assert f"this run is for partition {PAST} but was launched in hour" in result.stdout + result.stderr
    assert written(lake) == []
    runs = DagsterInstance.from_config(str(dagster_home)).get_runs()
    assert [r.status for r in runs] == [DagsterRunStatus.FAILURE]
