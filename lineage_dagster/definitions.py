"""The Dagster code location: assembles assets, job, schedule, sensors and resources from the environment."""

from dagster import Definitions

from lineage_dagster.assets import build_checkpoint_assets, pipeline_health_sensor
from lineage_dagster.assets.checkpoint import setting_tags, step_settings
from lineage_dagster.executors import checkpoint_executor, step_output_io_manager
from lineage_dagster.jobs import build_checkpoint_job
from lineage_dagster.sensors import catch_up_sensor, checkpoint_schedule
from lineage_dagster.settings import load_resources

resources = load_resources()
parallelism = resources.execution.parallelism
executor = checkpoint_executor(resources.execution)

defs = Definitions(
    assets=build_checkpoint_assets(parallelism),
    jobs=[build_checkpoint_job(executor, tags=setting_tags(step_settings(resources.kafka, resources.lake, parallelism)))],
    schedules=[checkpoint_schedule],
    sensors=[catch_up_sensor, pipeline_health_sensor],
    # Asset materializations launched from the UI run on the same executor as the job.
    executor=executor,
    # materialize_to_memory brings its own IO manager, so only the code location adds this one.
    resources={**resources.dagster_resources(), "io_manager": step_output_io_manager(resources.execution, resources.lake)},
)
