"""The checkpoint as Dagster assets: checkpoint_plan -> enriched_events -> write_ahead_commit_log.

One run is one checkpoint. The three assets are one graph (they only make sense together): a plan
step, one step per subtask and the commit step, which also evaluates the asset checks. A run with no
new records ends after the plan step. The assets are partitioned by the hours the pipeline ran in
(dynamic partitions the schedule adds as it launches runs), mirroring the S3 hour folders; a run's
partition is the hour its checkpoint lands in, and a run for any other hour is refused.

Steps hand each other the plan and file lists as plain op outputs, not asset inputs, so a run
without a partition (`dagster job execute`) works and a re-execution reuses its parent's plan.
"""

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import NoReturn

from dagster import (
    AssetCheckResult,
    AssetIn,
    AssetKey,
    AssetOut,
    AssetsDefinition,
    DagsterInstance,
    DynamicPartitionsDefinition,
    Failure,
    In,
    MetadataValue,
    Nothing,
    OpExecutionContext,
    Out,
    Output,
    TableColumn,
    TableRecord,
    TableSchema,
    graph_multi_asset,
    op,
)

from lineage_dagster import faults
from lineage_dagster.assets.checks import (
    CHECKS,
    FRESHNESS_CHECK,
    check_output_name,
    checkpoint_check_specs,
    evaluate_invariants,
    freshness_metadata,
)
from lineage_dagster.ledger.commit_log import SubtaskFiles
from lineage_dagster.ledger.paths import S3Location, hour_start, parse_hour_key
from lineage_dagster.ledger.plan import (
    CheckpointPlan,
    WrongHourError,
    backlog,
    check_new_plan_hour,
    check_pending_plan_hour,
    check_settings,
    plan_checkpoint,
)
from lineage_dagster.ledger.protocol import commit_checkpoint, fence, resolve_plan
from lineage_dagster.resources.kafka import KafkaResource
from lineage_dagster.resources.lake import LakeResource
from lineage_dagster.resources.limits import CheckpointLimits

# Keys are hours, `2026-12-07-03:00`: only the hours checkpoints were launched in, not every hour
# since some date (docs/design.md says why).
CHECKPOINT_HOURS = DynamicPartitionsDefinition(name="checkpoint_hours")
SOURCE_KEY = AssetKey("lineage_input")
COMMIT_LOG_KEY = AssetKey("write_ahead_commit_log")
CHECKPOINT_ASSET_KEYS = (AssetKey("checkpoint_plan"), AssetKey("enriched_events"), COMMIT_LOG_KEY)
CHECKPOINT_TAG = "lineage/checkpoint_id"

_RANGES_SCHEMA = TableSchema(
    columns=[
        TableColumn("partition", "int"),
        TableColumn("start_offset", "int"),
        TableColumn("end_offset", "int"),
        TableColumn("records", "int"),
    ]
)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _ranges_table(plan: CheckpointPlan) -> MetadataValue:
    return MetadataValue.table(
        [
            TableRecord({"partition": r.partition, "start_offset": r.start, "end_offset": r.end, "records": r.count})
            for r in plan.ranges
        ],
        schema=_RANGES_SCHEMA,
    )


def last_committed_hint(instance: DagsterInstance, commit_log: S3Location, topic: str) -> int | None:
    """The checkpoint id the last commit-log materialization recorded for this commit log and topic."""
    event = instance.get_latest_materialization_event(COMMIT_LOG_KEY)
    materialization = event.asset_materialization if event else None
    if materialization is None:
        return None
    metadata = materialization.metadata
    if "checkpoint_id" not in metadata or metadata.get("commit_log_path") != MetadataValue.text(str(commit_log)):
        return None
    if metadata.get("topic") != MetadataValue.text(topic):
        return None
    return int(metadata["checkpoint_id"].value)  # type: ignore[arg-type]


def _partition_hour(context: OpExecutionContext) -> datetime | None:
    """The hour of the run's partition; None for a run without one (`dagster job execute`)."""
    if not context.has_partition_key:
        return None
    try:
        return parse_hour_key(context.partition_key)
    except ValueError:
        _refuse(context, f"refused: partition {context.partition_key!r} is not an hour like 2026-12-07-03:00; nothing written")


def _launched_at(context: OpExecutionContext) -> datetime:
    record = context.instance.get_run_record_by_id(context.run_id)
    return record.create_timestamp if record else datetime.now(UTC)


def _refuse(context: OpExecutionContext, reason: str) -> NoReturn:
    """Fail the run with `reason`; retrying it would be refused the same way, so it is not retried."""
    context.instance.add_run_tags(context.run_id, {"dagster/retry_on_asset_or_op_failure": "false"})
    raise Failure(description=reason, allow_retries=False) from None


SETTING_TAG_PREFIX = "lineage/"


def step_settings(kafka: KafkaResource, lake: LakeResource, parallelism: int) -> dict[str, str]:
    """The settings every step of a checkpoint must share, by variable name."""
    return {
        "KAFKA_TOPIC": kafka.topic,
        "PARALLELISM": str(parallelism),
        "OUTPUT_PATH": str(lake.output),
        "DROPPED_PATH": str(lake.dropped),
        "WRITE_AHEAD_COMMIT_LOG_PATH": str(lake.commit_log),
    }


def setting_tags(settings: dict[str, str]) -> dict[str, str]:
    """Run tags recording the settings of the code location that launched a run (`lineage/KAFKA_TOPIC`...)."""
    return {SETTING_TAG_PREFIX + name: value for name, value in settings.items()}


def _check_launch_settings(context: OpExecutionContext, here: dict[str, str]) -> None:
    """Fail before writing anything when this step's process is configured apart from the code
    location that launched the run (runs launched without the job's tags are not checked)."""
    tags = context.run.tags
    launched = {name: tags[SETTING_TAG_PREFIX + name] for name in here if SETTING_TAG_PREFIX + name in tags}
    check_settings(here, launched, context=f"step {context.op.name}", source="where the run was launched")


def _max_record_bytes(limits: CheckpointLimits, plan: CheckpointPlan) -> int:
    """The plan's limit; plans stored before it had one use the setting."""
    return limits.max_record_bytes if plan.max_record_bytes is None else plan.max_record_bytes


def _own_run_ids(context: OpExecutionContext) -> set[str]:
    """This run and the runs it retries: a commit by any of them is this attempt's own commit."""
    run = context.run
    return {run_id for run_id in (run.run_id, run.parent_run_id, run.root_run_id) if run_id}


def _plan_op(parallelism: int):  # noqa: ANN202 - a Dagster op definition
    @op(
        name="plan_checkpoint",
        ins={"lineage_input": In(Nothing)},
        # Optional: with no new records nothing is planned and the rest of the run is skipped.
        out={"plan": Out(CheckpointPlan, is_required=False), "checkpoint_plan": Out(Nothing, is_required=False)},
        description="Fixes checkpoint N's offset ranges and stores them in S3 (chk-N/_plan.json) before any data; "
        "with no new records, plans nothing and the run ends.",
    )
    def plan_op(  # noqa: ANN202 - yields outputs
        context: OpExecutionContext, kafka: KafkaResource, lake: LakeResource, limits: CheckpointLimits
    ):
        here = step_settings(kafka, lake, parallelism)
        _check_launch_settings(context, here)
        store = lake.store()
        lake.check_buckets(store)
        source = kafka.record_source()
        partition_hour = _partition_hour(context)

        def make_plan(checkpoint_id: int, committed_ends: dict[int, int]) -> CheckpointPlan:
            if partition_hour is not None:
                check_new_plan_hour(partition_hour, _launched_at(context))
            return plan_checkpoint(
                checkpoint_id=checkpoint_id,
                topic=kafka.topic,
                hour=partition_hour or hour_start(datetime.now(UTC)),
                committed_ends=committed_ends,
                watermarks=source.watermarks(),
                max_records=limits.max_records_per_checkpoint,
                parallelism=parallelism,
                run_id=context.run_id,
                planned_at_ms=_now_ms(),
                allow_offset_loss=limits.allow_offset_loss,
                buffer_bytes=limits.subtask_buffer_bytes,
                max_record_bytes=limits.max_record_bytes,
                output_path=str(lake.output),
                dropped_path=str(lake.dropped),
                commit_log_path=str(lake.commit_log),
            )

        hint = last_committed_hint(context.instance, lake.commit_log, kafka.topic)
        try:
            resolved = resolve_plan(store, lake.commit_log, hint, make_plan)
            if resolved.reused and partition_hour is not None:
                check_pending_plan_hour(resolved.plan, partition_hour)
        except WrongHourError as refusal:
            _refuse(context, str(refusal))
        plan = resolved.plan
        if resolved.nothing_new:
            context.log.info(
                f"checkpoint_id={plan.checkpoint_id} not planned: no new records in topic {plan.topic!r} since "
                f"checkpoint {plan.checkpoint_id - 1}; nothing to commit"
            )
            return
        context.instance.add_run_tags(context.run_id, {CHECKPOINT_TAG: str(plan.checkpoint_id)})
        check_settings(here, plan.planned_with(), context=f"checkpoint_id={plan.checkpoint_id}", source="when it was planned")
        for skipped in plan.lost:
            context.log.warning(
                f"checkpoint_id={plan.checkpoint_id} SKIPS offsets [{skipped.start}, {skipped.end}) of partition "
                f"{skipped.partition}: deleted from Kafka before they were read (ALLOW_OFFSET_LOSS=true); recorded in the ledger"
            )
        context.log.info(
            f"checkpoint_id={plan.checkpoint_id} {'resumed stored plan' if resolved.reused else 'planned'}: "
            f"{plan.record_count} records over {sum(1 for r in plan.ranges if r.count)} partitions"
        )
        faults.reach("after_plan")
        yield Output(plan, "plan")
        yield Output(
            None,
            "checkpoint_plan",
            metadata={
                "checkpoint_id": plan.checkpoint_id,
                "run_id": plan.run_id,
                "resumed": resolved.reused,
                "records": plan.record_count,
                "offsets_lost": sum(r.count for r in plan.lost),
                "offset_ranges": _ranges_table(plan),
            },
        )

    return plan_op


def _subtask_op_name(subtask: int) -> str:
    return f"write_subtask_{subtask}_files"


def _subtask_op(subtask: int, parallelism: int):  # noqa: ANN202 - a Dagster op definition
    @op(
        name=_subtask_op_name(subtask),
        ins={"plan": In(CheckpointPlan)},
        out=Out(SubtaskFiles),
        description=f"Reads subtask {subtask}'s planned ranges from Kafka and writes its Parquet files.",
    )
    def write_subtask(
        context: OpExecutionContext, plan: CheckpointPlan, kafka: KafkaResource, lake: LakeResource, limits: CheckpointLimits
    ) -> SubtaskFiles:
        # Imported here: polars and numpy load only in a process that writes records.
        from lineage_dagster.ingest.subtask import write_subtask_files

        _check_launch_settings(context, step_settings(kafka, lake, parallelism))
        store = lake.store()
        fence(store, lake.commit_log, plan.checkpoint_id, _own_run_ids(context))
        started = time.monotonic()
        files = write_subtask_files(
            plan=plan,
            subtask=subtask,
            source=kafka.record_source(),
            store=store,
            output=lake.output,
            dropped=lake.dropped,
            max_record_bytes=_max_record_bytes(limits, plan),
        )
        if subtask == 0:
            faults.reach("during_write")
        context.log.info(
            f"checkpoint_id={plan.checkpoint_id} subtask={subtask} wrote {files.record_count} records "
            f"({files.dropped_count} dropped) in {len(files.files)} files in {time.monotonic() - started:.2f}s"
        )
        return files

    return write_subtask


def _events_metadata(files: list[SubtaskFiles]) -> dict[str, object]:
    written = [w for subtask_files in files for w in subtask_files.files]
    return {
        "checkpoint_id": files[0].checkpoint_id,
        "records": sum(f.record_count for f in files),
        "dropped_records": sum(f.dropped_count for f in files),
        "files": len(written),
        "bytes": sum(w.size_bytes for w in written),
        "file_list": MetadataValue.md("\n".join(f"- `{w.uri}` ({w.kind}, {w.record_count} records)" for w in written) or "none"),
    }


@op(
    ins={"plan": In(CheckpointPlan), "subtask_files": In(list[SubtaskFiles])},
    out={
        "enriched_events": Out(Nothing),
        "write_ahead_commit_log": Out(Nothing),
        **{check_output_name(COMMIT_LOG_KEY, name): Out(Nothing) for name in (*CHECKS, FRESHNESS_CHECK)},
    },
    description="Writes chk-N/subtask-K.csv per subtask, then the commit marker chk-N/_committed.json, "
    "then checks the committed checkpoint's invariants from what S3 holds.",
)
def commit_checkpoint_log(  # noqa: ANN201 - yields outputs
    context: OpExecutionContext, kafka: KafkaResource, lake: LakeResource, plan: CheckpointPlan, subtask_files: list[SubtaskFiles]
):
    _check_launch_settings(context, step_settings(kafka, lake, len(subtask_files)))
    files = sorted(subtask_files, key=lambda f: f.subtask)
    faults.reach("after_data")
    store = lake.store()
    marker = commit_checkpoint(
        store,
        lake.commit_log,
        plan,
        files,
        run_id=context.run_id,
        own_run_ids=_own_run_ids(context),
        committed_at_ms=_now_ms(),
        before_marker=lambda: faults.reach("after_log"),
    )
    stored_at_ms = _now_ms()  # the marker is in S3: the checkpoint's data and commit log are durable
    faults.reach("after_marker")
    # The checks read the checkpoint back from S3 while Dagster stores the materializations.
    checking = ThreadPoolExecutor(1, thread_name_prefix="asset-checks")
    checks = checking.submit(evaluate_invariants, store, lake.commit_log, plan.checkpoint_id, COMMIT_LOG_KEY)
    checking.shutdown(wait=False)
    high = kafka.record_source().watermarks()
    # Records waiting after this commit, counted as the health sensor counts them.
    lag = backlog(marker.end_offsets(), high)
    context.log.info(
        f"checkpoint_id={plan.checkpoint_id} committed by run {marker.run_id}: {marker.record_count} records, "
        f"{marker.dropped_count} dropped, {len(marker.files)} files; lag {lag}"
    )
    # Both materializations are reported only once the marker exists: data counts when committed.
    yield Output(None, "enriched_events", metadata=_events_metadata(files))
    yield Output(
        None,
        "write_ahead_commit_log",
        metadata={
            "checkpoint_id": plan.checkpoint_id,
            "run_id": marker.run_id,
            "topic": plan.topic,
            "commit_log_path": str(lake.commit_log),
            "end_offsets": MetadataValue.json({str(p): e for p, e in marker.end_offsets().items()}),
            "records": marker.record_count,
            "dropped_records": marker.dropped_count,
            "files": len(marker.files),
            "lag_after_commit": lag,
            "planned_at": MetadataValue.timestamp(plan.planned_at_ms / 1000),
            # From the plan to the marker stored, commit log included (commit_timestamp, written
            # in the commit log before the marker, is taken just before the commit log).
            "duration_s": round((stored_at_ms - plan.planned_at_ms) / 1000, 3),
        },
    )
    yield AssetCheckResult(
        check_name=FRESHNESS_CHECK,
        passed=True,
        description=f"checkpoint {plan.checkpoint_id} committed; {lag} records wait",
        metadata=freshness_metadata(lag, 0.0, plan.checkpoint_id),
    )
    for result in checks.result():
        if not result.passed:
            context.log.error(
                f"checkpoint_id={plan.checkpoint_id} check {result.check_name} failed: {result.metadata['violations'].value}"
            )
        yield result


def build_checkpoint_graph(parallelism: int) -> AssetsDefinition:
    """The checkpoint graph with `parallelism` subtask steps."""
    plan_op = _plan_op(parallelism)
    subtask_ops = [_subtask_op(k, parallelism) for k in range(parallelism)]

    @graph_multi_asset(
        name="checkpoint",
        partitions_def=CHECKPOINT_HOURS,
        check_specs=checkpoint_check_specs(COMMIT_LOG_KEY),
        ins={"lineage_input": AssetIn(key=SOURCE_KEY, dagster_type=Nothing)},
        outs={
            "checkpoint_plan": AssetOut(
                dagster_type=Nothing,
                is_required=False,
                description="Checkpoint N's offset ranges, fixed in chk-N/_plan.json before any data.",
            ),
            "enriched_events": AssetOut(
                dagster_type=Nothing,
                is_required=False,
                description="Kafka records enriched with topic, partition, offset and checkpoint id, as Parquet in "
                "OUTPUT_PATH/year=/month=/day=/hour=; undecodable records go to DROPPED_PATH.",
            ),
            "write_ahead_commit_log": AssetOut(
                dagster_type=Nothing,
                is_required=False,
                description="chk-N/subtask-K.csv per subtask and the commit marker chk-N/_committed.json.",
            ),
        },
    )
    def checkpoint(lineage_input):  # noqa: ANN001, ANN202 - Dagster graph composition
        plan, plan_record = plan_op(lineage_input)
        committed = commit_checkpoint_log(plan, [write(plan) for write in subtask_ops])
        return {"checkpoint_plan": plan_record, **committed._asdict()}

    return checkpoint
