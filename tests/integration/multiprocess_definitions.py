"""The pipeline's definitions with the multiprocess executor, which runs each step in a process
of its own, as users who outgrow the in-process default configure it."""

from dagster import AssetSelection, Definitions, define_asset_job, multiprocess_executor

from lineage_dagster import definitions
from lineage_dagster.sensors.schedule import CHECKPOINT_ASSET_KEYS, CHECKPOINT_JOB_NAME

defs = Definitions(
    assets=definitions.defs.assets,
    jobs=[
        define_asset_job(
            CHECKPOINT_JOB_NAME, selection=AssetSelection.assets(*CHECKPOINT_ASSET_KEYS), executor_def=multiprocess_executor
        )
    ],
    resources=definitions.defs.resources,
)
