"""What the UI shows about health, against the real Kafka and S3: the health sensor observes the
topic (high watermarks, records waiting) and fails `committed_recently` once records have waited
three minutes with no commit, passing again when a checkpoint commits."""

import json
import time
from datetime import UTC, datetime

from dagster import DagsterInstance, build_sensor_context, materialize_to_memory

from lineage_dagster.assets import CHECKPOINT_HOURS, build_checkpoint_assets, pipeline_health_sensor
from lineage_dagster.ledger.paths import hour_key


def evaluate(lake, instance: DagsterInstance, cursor: str | None = None):
    resources = lake.resources.dagster_resources()
    with build_sensor_context(instance=instance, cursor=cursor, resources=resources) as context:
        result = pipeline_health_sensor(context)
    observation, check = result.asset_events
    return {k: v.value for k, v in observation.metadata.items()}, check, result.cursor


def commit_one_checkpoint(lake, instance: DagsterInstance) -> None:
    key = hour_key(datetime.now(UTC))
    instance.add_dynamic_partitions(CHECKPOINT_HOURS.name, [key])
    assets = build_checkpoint_assets(lake.parallelism)
    assert materialize_to_memory(
        assets, instance=instance, resources=lake.resources.dagster_resources(), partition_key=key
    ).success


def test_the_topic_is_observed_and_the_freshness_check_follows_the_commits(lake):
    instance = DagsterInstance.ephemeral()
    observed, check, cursor = evaluate(lake, instance)
    assert observed["records_waiting"] == 0 and observed["partitions"] == 10
    assert check.passed and check.description == "no records wait in Kafka"

    lake.produce(300)
    observed, check, cursor = evaluate(lake, instance, cursor)
    assert observed["records_waiting"] == 300 and sum(observed["high_watermarks"].values()) == 300
    assert check.passed, "records that just arrived are not late"

    # Four minutes later (the sensor's cursor remembers since when records wait), still no commit.
    four_minutes_ago = json.dumps({"waiting_since": time.time() - 240})
    observed, check, cursor = evaluate(lake, instance, four_minutes_ago)
    assert not check.passed
    assert check.description.startswith("300 records wait in Kafka and no checkpoint has committed for 4.0 minutes")
    assert check.metadata["records_waiting"].value == 300

    commit_one_checkpoint(lake, instance)
    observed, check, cursor = evaluate(lake, instance, cursor)
    assert check.passed and observed["records_waiting"] == 0 and observed["last_committed_checkpoint"] == 1

    lake.produce(20)
    observed, check, _ = evaluate(lake, instance, four_minutes_ago)
    assert check.passed, "the commit a moment ago is recent, however long records have waited before it"
    assert observed["records_waiting"] == 20
