"""The checkpoint job: one run is one checkpoint; never two in flight."""

from collections.abc import Mapping

from dagster import AssetSelection, DagsterRunStatus, ExecutorDefinition, define_asset_job, in_process_executor

from lineage_dagster.assets.checkpoint import CHECKPOINT_ASSET_KEYS

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


def build_checkpoint_job(  # noqa: ANN201 - an unresolved asset job
    executor_def: ExecutorDefinition = in_process_executor, tags: Mapping[str, str] | None = None
):
    """The checkpoint job on `executor_def`; `tags` go on every run (the settings it was launched with)."""
    return define_asset_job(
        CHECKPOINT_JOB_NAME,
        selection=AssetSelection.assets(*CHECKPOINT_ASSET_KEYS),
        executor_def=executor_def,
        tags={**SINGLE_FLIGHT_TAG, **(tags or {})},
        description="One checkpoint: plan, write Parquet per subtask, write the commit log and commit.",
    )
