"""The schedule's and the catch-up sensor's decisions against the real Kafka and S3 ledger: an
unfinished plan is finished first, under the hour it was planned in; the sensor launches early only
for a large backlog."""

from contextlib import nullcontext
from datetime import UTC, datetime

from dagster import RunRequest, SkipReason, build_schedule_context, build_sensor_context, instance_for_test

from lineage_dagster.assets import CHECKPOINT_HOURS
from lineage_dagster.ledger.paths import hour_key
from lineage_dagster.resources import CheckpointLimits
from lineage_dagster.sensors import catch_up_sensor, checkpoint_schedule
from tests.helpers import store_crashed_plan


def evaluate(lake, tick, instance=None):
    resources = lake.resources.dagster_resources()
    with (
        nullcontext(instance) if instance else instance_for_test() as instance,
        build_schedule_context(
            instance=instance,
            scheduled_execution_time=tick,
            resources=resources,
        ) as context,
    ):
        return checkpoint_schedule(context)


def test_an_idle_topic_launches_nothing(lake):
    result = evaluate(lake, datetime.now(UTC))
    assert isinstance(result, SkipReason) and "no new records" in result.skip_message


def test_the_run_is_for_the_current_hour_which_becomes_a_partition(lake):
    lake.produce(10)
    with instance_for_test() as instance:
        result = evaluate(lake, datetime.now(UTC), instance)
        assert isinstance(result, RunRequest)
        assert result.partition_key == hour_key(datetime.now(UTC))
        assert instance.get_dynamic_partitions(CHECKPOINT_HOURS.name) == [result.partition_key]


def test_pending_plan_is_finished_under_its_own_hour(lake):
    store_crashed_plan(lake)
    result = evaluate(lake, datetime.now(UTC))
    assert isinstance(result, RunRequest)
    assert result.partition_key == "2026-11-25-19:00"


def evaluate_sensor(lake, max_records):
    resources = {**lake.resources.dagster_resources(), "limits": CheckpointLimits(max_records_per_checkpoint=max_records)}
    with instance_for_test() as instance, build_sensor_context(instance=instance, resources=resources) as context:
        return catch_up_sensor(context)


def test_sensor_launches_early_only_for_half_a_checkpoint_of_backlog(lake):
    lake.produce(30)
    waiting = evaluate_sensor(lake, max_records=100)
    assert isinstance(waiting, SkipReason) and "30 records wait" in waiting.skip_message
    lake.produce(20)
    assert isinstance(evaluate_sensor(lake, max_records=100), RunRequest)


def test_sensor_leaves_an_unfinished_plan_to_its_retry(lake):
    lake.produce(200)
    store_crashed_plan(lake)
    result = evaluate_sensor(lake, max_records=100)
    assert isinstance(result, SkipReason) and "checkpoint 1 is planned but not committed" in result.skip_message
