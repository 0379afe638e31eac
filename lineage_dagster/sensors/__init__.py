from lineage_dagster.sensors.schedule import CHECKPOINT_JOB_NAME, build_checkpoint_job, catch_up_sensor, checkpoint_schedule

__all__ = ["CHECKPOINT_JOB_NAME", "build_checkpoint_job", "catch_up_sensor", "checkpoint_schedule"]
