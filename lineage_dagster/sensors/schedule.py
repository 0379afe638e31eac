"""The 60-second checkpoint schedule: one run per tick, never two checkpoints in flight."""

from datetime import UTC, datetime

from dagster import (
    AssetSelection,
    DagsterRunStatus,
    DefaultScheduleStatus,
    RunRequest,
    RunsFilter,
    ScheduleEvaluationContext,
    SkipReason,
    define_asset_job,
    in_process_executor,
    schedule,
)

from lineage_dagster.assets.checkpoint import CHECKPOINT_ASSET_KEYS, CHECKPOINT_TAG, HOURLY, last_committed_hint
from lineage_dagster.ledger.protocol import find_pending_plan
from lineage_dagster.resources.kafka import KafkaResource
from lineage_dagster.resources.lake import LakeResource

CHECKPOINT_JOB_NAME = "checkpoint_job"
# The run queue admits one run with this tag at a time (see deploy/dagster.yaml).
SINGLE_FLIGHT_TAG = {"lineage/pipeline": "checkpoint"}
IN_FLIGHT = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]


def build_checkpoint_job():  # noqa: ANN201 - an unresolved asset job
    return define_asset_job(
        CHECKPOINT_JOB_NAME,
        selection=AssetSelection.assets(*CHECKPOINT_ASSET_KEYS),
        executor_def=in_process_executor,
        tags=SINGLE_FLIGHT_TAG,
        description="One checkpoint: plan, write Parquet per subtask, write the commit log and commit.",
    )


@schedule(
    cron_schedule="* * * * *",
    job_name=CHECKPOINT_JOB_NAME,
    execution_timezone="UTC",
    default_status=DefaultScheduleStatus.RUNNING,
    description="Launches one checkpoint a minute; skips while one is queued or running.",
)
def checkpoint_schedule(context: ScheduleEvaluationContext, kafka: KafkaResource, lake: LakeResource) -> RunRequest | SkipReason:
    in_flight = context.instance.get_run_records(RunsFilter(job_name=CHECKPOINT_JOB_NAME, statuses=IN_FLIGHT), limit=1)
    if in_flight:
        run = in_flight[0].dagster_run
        return SkipReason(f"run {run.run_id} (checkpoint {run.tags.get(CHECKPOINT_TAG, '?')}) is still in flight")
    tick = context.scheduled_execution_time or datetime.now(UTC)
    hour = tick.astimezone(UTC)
    # An unfinished plan is finished first, under the hour it was planned in.
    store = lake.store()
    hint = last_committed_hint(context.instance, lake.commit_log, kafka.topic)
    _, pending = find_pending_plan(store, lake.commit_log, hint)
    if pending is not None:
        hour = pending.hour
    return RunRequest(partition_key=HOURLY.get_partition_key_for_timestamp(hour.timestamp()))
