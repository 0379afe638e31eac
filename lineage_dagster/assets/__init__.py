from dagster import AssetsDefinition, SourceAsset

from lineage_dagster.assets.checkpoint import CHECKPOINT_HOURS, COMMIT_LOG_KEY, build_checkpoint_graph
from lineage_dagster.assets.health import lineage_input, pipeline_health_sensor

__all__ = [
    "CHECKPOINT_HOURS",
    "COMMIT_LOG_KEY",
    "build_checkpoint_assets",
    "pipeline_health_sensor",
]


def build_checkpoint_assets(parallelism: int) -> list[AssetsDefinition | SourceAsset]:
    """The source topic and the checkpoint graph with `parallelism` subtask steps."""
    return [lineage_input, build_checkpoint_graph(parallelism)]
