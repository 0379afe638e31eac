from lineage_dagster.assets.checkpoint import COMMIT_LOG_KEY, HOURLY, build_checkpoint_assets
from lineage_dagster.assets.checks import checkpoint_invariants

__all__ = ["COMMIT_LOG_KEY", "HOURLY", "build_checkpoint_assets", "checkpoint_invariants"]
