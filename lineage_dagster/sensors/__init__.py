from lineage_dagster.sensors.schedule import catch_up_sensor, checkpoint_schedule

__all__ = ["catch_up_sensor", "checkpoint_schedule"]
