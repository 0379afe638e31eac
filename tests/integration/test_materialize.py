"""The checkpoint assets under `materialize_to_memory`, against the real Kafka and S3."""

from datetime import UTC, datetime

from dagster import DagsterInstance, materialize_to_memory

from lineage_dagster.assets import CHECKPOINT_HOURS, COMMIT_LOG_KEY, build_checkpoint_assets
from lineage_dagster.ledger.paths import hour_folder, hour_key
from lineage_dagster.ledger.protocol import read_marker, read_plan
from lineage_dagster.ledger.verify import read_checkpoint_rows


def current_hour(instance: DagsterInstance) -> str:
    """This hour's partition, added as the schedule adds it."""
    key = hour_key(datetime.now(UTC))
    instance.add_dynamic_partitions(CHECKPOINT_HOURS.name, [key])
    return key


def latest_commit_metadata(instance: DagsterInstance) -> dict:
    event = instance.get_latest_materialization_event(COMMIT_LOG_KEY)
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def test_two_materializations_give_contiguous_checkpoints(lake):
    instance = DagsterInstance.ephemeral()
    assets = build_checkpoint_assets(lake.parallelism)
    resources = lake.resources.dagster_resources()

    lake.produce(1000)
    first = materialize_to_memory(assets, instance=instance, resources=resources, partition_key=current_hour(instance))
    assert first.success
    assert latest_commit_metadata(instance)["checkpoint_id"] == 1
    rows = read_checkpoint_rows(lake.store, lake.commit_log, 1)
    assert {k: sum(r.record_count for r in rows if r.s3_key.endswith(f"-{k}.parquet")) for k in range(2)} == {0: 500, 1: 500}, (
        "each subtask step wrote its own half"
    )

    lake.produce(500)
    second = materialize_to_memory(assets, instance=instance, resources=resources, partition_key=current_hour(instance))
    assert second.success
    checks = second.get_asset_check_evaluations()
    assert sorted(c.check_name for c in checks) == ["committed_recently", "files_exist", "offsets_contiguous", "row_counts_match"]
    assert all(c.passed for c in checks)
    metadata = latest_commit_metadata(instance)
    assert metadata["checkpoint_id"] == 2
    assert metadata["records"] == 500

    log = lake.commit_log
    one, two = read_marker(lake.store, log, 1), read_marker(lake.store, log, 2)
    assert one.record_count == 1000 and two.record_count == 500
    assert [r.start for r in two.ranges] == [r.end for r in one.ranges]
    assert sum(r.end for r in two.ranges) == 1500
    assert metadata["end_offsets"] == {str(r.partition): r.end for r in two.ranges}
    # The checkpoint's duration runs from its plan to its marker stored: the commit log's writes,
    # after the commit timestamp, count in it.
    plan = read_plan(lake.store, log, 2)
    assert metadata["planned_at"] == plan.planned_at_ms / 1000
    assert metadata["duration_s"] * 1000 > two.committed_at_ms - plan.planned_at_ms
    for n, marker in ((1, one), (2, two)):
        assert all(f"/{hour_folder(datetime.fromisoformat(marker.hour))}/part-0000000{n}-" in f for f in marker.files)
