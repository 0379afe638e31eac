"""The checkpoint assets under `materialize_to_memory` with the in-memory Kafka and S3 resources a
user's own tests can use: no service, two checkpoints, everything they write read back."""

import io
import time

import polars as pl
from dagster import DagsterInstance, materialize_to_memory

from lineage_dagster.assets import COMMIT_LOG_KEY, build_checkpoint_assets
from lineage_dagster.ledger.paths import split_uri
from lineage_dagster.ledger.protocol import read_marker, read_plan
from lineage_dagster.ledger.verify import read_checkpoint_rows
from lineage_dagster.testing import current_hour_partition, in_memory_resources

CHECKS = ["committed_recently", "files_exist", "offsets_contiguous", "row_counts_match"]


def test_two_checkpoints_offline():
    started = time.monotonic()
    resources = in_memory_resources(partitions=4)
    kafka, lake = resources["kafka"], resources["lake"]
    assets = build_checkpoint_assets(parallelism=2)
    instance = DagsterInstance.ephemeral()
    store, log = lake.store(), lake.commit_log

    kafka.produce(1000)
    first = materialize_to_memory(assets, instance=instance, resources=resources, partition_key=current_hour_partition(instance))
    assert first.success
    plan = read_plan(store, log, 1)
    assert plan.record_count == 1000 and {r.partition: (r.start, r.end) for r in plan.ranges} == {p: (0, 250) for p in range(4)}

    kafka.produce(200)
    second = materialize_to_memory(assets, instance=instance, resources=resources, partition_key=current_hour_partition(instance))
    assert second.success
    assert sorted(c.check_name for c in second.get_asset_check_evaluations()) == CHECKS
    assert all(c.passed for c in second.get_asset_check_evaluations())
    metadata = instance.get_latest_materialization_event(COMMIT_LOG_KEY).asset_materialization.metadata
    assert metadata["checkpoint_id"].value == 2 and metadata["records"].value == 200

    one, two = read_marker(store, log, 1), read_marker(store, log, 2)
    assert (one.record_count, two.record_count) == (1000, 200)
    assert {r.partition: r.start for r in two.ranges} == one.end_offsets()

    rows = read_checkpoint_rows(store, log, 2)
    assert {row.s3_key for row in rows} == set(two.files)
    assert sum(row.record_count for row in rows) == 200
    data = pl.concat(
        [pl.read_parquet(io.BytesIO(store.get(*split_uri(row.s3_key)))) for row in {r.s3_key: r for r in rows}.values()]
    )
    assert data.height == 200 and set(data["checkpoint_id"]) == {2}
    assert sorted(data.filter(pl.col("kafka_partition") == 0)["kafka_offset"]) == list(range(250, 300))
    assert time.monotonic() - started < 30
