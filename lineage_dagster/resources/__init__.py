"""The pipeline's Dagster resources, one per concern; `lineage_dagster.settings` fills them from the environment."""

from lineage_dagster.resources.execution import ExecutionResource
from lineage_dagster.resources.kafka import KafkaResource
from lineage_dagster.resources.lake import LakeResource
from lineage_dagster.resources.limits import CheckpointLimits
from lineage_dagster.resources.step_outputs import step_output_files

__all__ = ["CheckpointLimits", "ExecutionResource", "KafkaResource", "LakeResource", "step_output_files"]
