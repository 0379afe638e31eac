"""The Dagster code location: assembles assets, job, schedule, sensor and resources from settings."""

from dagster import Definitions

from lineage_dagster.assets import build_checkpoint_assets, pipeline_health_sensor
from lineage_dagster.assets.checkpoint import setting_tags, step_settings
from lineage_dagster.executors import checkpoint_executor, step_output_io_manager
from lineage_dagster.jobs import build_checkpoint_job
from lineage_dagster.resources import build_resources
from lineage_dagster.sensors import catch_up_sensor, checkpoint_schedule
from lineage_dagster.settings import load_settings

settings = load_settings()
resources = build_resources(settings)
executor = checkpoint_executor(settings)

defs = Definitions(
    assets=build_checkpoint_assets(settings.parallelism),
    jobs=[
        build_checkpoint_job(
            executor, tags=setting_tags(step_settings(resources["kafka"], resources["lake"], settings.parallelism))
        )
    ],
    schedules=[checkpoint_schedule],
    sensors=[catch_up_sensor, pipeline_health_sensor],
    # Asset materializations launched from the UI run on the same executor as the job.
    executor=executor,
    # materialize_to_memory brings its own IO manager, so build_resources leaves it out.
    resources={**resources, "io_manager": step_output_io_manager(settings, resources["lake"].s3)},
)
