"""The Dagster code location: assembles assets, job, schedule, sensor and resources from settings."""

from dagster import Definitions

from lineage_dagster.assets import build_checkpoint_assets
from lineage_dagster.resources import build_resources, step_output_files
from lineage_dagster.sensors import build_checkpoint_job, catch_up_sensor, checkpoint_schedule
from lineage_dagster.settings import load_settings

settings = load_settings()

defs = Definitions(
    assets=build_checkpoint_assets(settings.parallelism),
    jobs=[build_checkpoint_job()],
    schedules=[checkpoint_schedule],
    sensors=[catch_up_sensor],
    # materialize_to_memory brings its own IO manager, so build_resources leaves it out.
    resources={**build_resources(settings), "io_manager": step_output_files},
)
