"""The yardstick for orchestration overhead: a one-asset Dagster job doing nothing."""

import dagster as dg


@dg.asset
def trivial() -> int:
    return 1


defs = dg.Definitions(assets=[trivial], jobs=[dg.define_asset_job("trivial_job", executor_def=dg.in_process_executor)])
