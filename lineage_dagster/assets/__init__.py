from lineage_dagster.assets.checkpoint import COMMIT_LOG_KEY, HOURLY, build_checkpoint_assets

__all__ = ["COMMIT_LOG_KEY", "HOURLY", "build_checkpoint_assets"]
