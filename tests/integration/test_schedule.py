"""The schedule's decision against the real S3 ledger: an unfinished plan is finished first,
under the hour it was planned in."""

from datetime import UTC, datetime

from dagster import RunRequest, build_schedule_context, instance_for_test

from lineage_dagster.ledger.paths import plan_key
from lineage_dagster.ledger.plan import CheckpointPlan, PartitionRange
from lineage_dagster.resources import build_resources
from lineage_dagster.sensors import checkpoint_schedule


def evaluate(lake, tick):
    resources = build_resources(lake.settings)
    with (
        instance_for_test() as instance,
        build_schedule_context(
            instance=instance,
            scheduled_execution_time=tick,
            resources={"kafka": resources["kafka"], "lake": resources["lake"]},
        ) as context,
    ):
        return checkpoint_schedule(context)


def test_tick_hour_is_the_partition_without_a_pending_plan(lake):
    result = evaluate(lake, datetime(2026, 11, 25, 20, 5, tzinfo=UTC))
    assert isinstance(result, RunRequest)
    assert result.partition_key == "2026-11-25-20:00"


def test_pending_plan_is_finished_under_its_own_hour(lake):
    plan = CheckpointPlan(
        checkpoint_id=1,
        topic=lake.name,
        hour=datetime(2026, 11, 25, 19, tzinfo=UTC),
        planned_at_ms=0,
        run_id="crashed-run",
        parallelism=2,
        ranges=(PartitionRange(0, 0, 0),),
    )
    log = lake.settings.commit_log
    assert lake.store.put_if_absent(log.bucket, plan_key(log, 1), plan.to_json())
    result = evaluate(lake, datetime(2026, 11, 25, 20, 5, tzinfo=UTC))
    assert isinstance(result, RunRequest)
    assert result.partition_key == "2026-11-25-19:00"
