"""When checkpoints run: every minute by the schedule while records wait, earlier by the catch-up
sensor when a large backlog waits; never two checkpoints in flight. Each run is for the partition of
the hour it lands in, which is added to the checkpoint assets' partitions as the run is requested."""

from datetime import UTC, datetime

from dagster import (
    DagsterInstance,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    ScheduleEvaluationContext,
    SensorEvaluationContext,
    SkipReason,
    schedule,
    sensor,
)

from lineage_dagster.assets.checkpoint import CHECKPOINT_HOURS, CHECKPOINT_TAG, last_committed_hint
from lineage_dagster.jobs import CHECKPOINT_JOB_NAME, IN_FLIGHT
from lineage_dagster.ledger.paths import hour_key
from lineage_dagster.ledger.plan import backlog
from lineage_dagster.ledger.protocol import find_pending_plan
from lineage_dagster.resources.kafka import KafkaResource
from lineage_dagster.resources.lake import LakeResource
from lineage_dagster.resources.limits import CheckpointLimits


def _next_checkpoint(
    instance: DagsterInstance, kafka: KafkaResource, lake: LakeResource, now: datetime, *, min_backlog: int = 0
) -> RunRequest | SkipReason:
    """A run for the next checkpoint, unless one is in flight, no record waits or, when catching up
    (`min_backlog`), fewer than that wait. An unfinished plan is finished first, under the hour it
    was planned in; catching up leaves it to the run's retry or the schedule, so a retry never races
    a second run."""
    in_flight = instance.get_run_records(RunsFilter(job_name=CHECKPOINT_JOB_NAME, statuses=IN_FLIGHT), limit=1)
    if in_flight:
        run = in_flight[0].dagster_run
        return SkipReason(f"run {run.run_id} (checkpoint {run.tags.get(CHECKPOINT_TAG, '?')}) is still in flight")
    hint = last_committed_hint(instance, lake.commit_log, kafka.topic)
    previous, pending = find_pending_plan(lake.store(), lake.commit_log, hint)
    if pending is not None:
        if min_backlog:
            return SkipReason(
                f"checkpoint {pending.checkpoint_id} is planned but not committed; its retry or the schedule finishes it"
            )
        hour = pending.hour
    else:
        waiting = backlog(previous.end_offsets() if previous else {}, kafka.record_source().watermarks())
        if not waiting:
            return SkipReason(f"no new records in topic {kafka.topic!r}")
        if waiting < min_backlog:
            return SkipReason(f"{waiting} records wait in Kafka, fewer than {min_backlog}; the schedule takes them")
        hour = now
    partition = hour_key(hour)
    if not instance.has_dynamic_partition(CHECKPOINT_HOURS.name, partition):
        instance.add_dynamic_partitions(CHECKPOINT_HOURS.name, [partition])
    return RunRequest(partition_key=partition)


@schedule(
    cron_schedule="* * * * *",
    job_name=CHECKPOINT_JOB_NAME,
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Launches one checkpoint a minute while records wait; skips while one is queued or running.",
)
def checkpoint_schedule(context: ScheduleEvaluationContext, kafka: KafkaResource, lake: LakeResource) -> RunRequest | SkipReason:
    # The hour the run is created in, not the tick's (a late tick at 11:00:05 for 10:59 is an 11:00 run).
    return _next_checkpoint(context.instance, kafka, lake, datetime.now(UTC))


@sensor(
    job_name=CHECKPOINT_JOB_NAME,
    minimum_interval_seconds=5,
    default_status=DefaultSensorStatus.RUNNING,
    description="Launches a checkpoint before the next minute when at least half of MAX_RECORDS_PER_CHECKPOINT "
    "waits in Kafka and none is in flight, so a busy topic is drained back to back.",
)
def catch_up_sensor(
    context: SensorEvaluationContext, kafka: KafkaResource, lake: LakeResource, limits: CheckpointLimits
) -> RunRequest | SkipReason:
    return _next_checkpoint(
        context.instance, kafka, lake, datetime.now(UTC), min_backlog=max(limits.max_records_per_checkpoint // 2, 1)
    )
