"""What the UI shows about the pipeline's health: the topic observed every 30 seconds (high
watermarks, records waiting) and whether checkpoints keep up (`committed_recently`)."""

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from dagster import (
    AssetCheckEvaluation,
    AssetCheckSeverity,
    AssetObservation,
    DagsterInstance,
    DefaultSensorStatus,
    MetadataValue,
    ObserveResult,
    OpExecutionContext,
    SensorEvaluationContext,
    SensorResult,
    observable_source_asset,
    sensor,
)

from lineage_dagster.assets.checkpoint import COMMIT_LOG_KEY, SOURCE_KEY, last_committed_hint
from lineage_dagster.assets.checks import FRESHNESS_CHECK, freshness_metadata
from lineage_dagster.ledger.commit_log import CommitMarker
from lineage_dagster.ledger.health import commit_freshness
from lineage_dagster.ledger.plan import backlog
from lineage_dagster.ledger.protocol import find_last_committed
from lineage_dagster.resources.kafka import KafkaResource
from lineage_dagster.resources.lake import LakeResource


@dataclass(frozen=True)
class InputState:
    topic: str
    watermarks: dict[int, tuple[int, int]]
    last_commit: CommitMarker | None
    records_waiting: int

    @property
    def last_checkpoint_id(self) -> int:
        return self.last_commit.checkpoint_id if self.last_commit else 0

    @property
    def last_commit_at(self) -> datetime | None:
        return datetime.fromtimestamp(self.last_commit.committed_at_ms / 1000, UTC) if self.last_commit else None

    def metadata(self) -> dict[str, object]:
        return {
            "topic": self.topic,
            "partitions": len(self.watermarks),
            "records_waiting": self.records_waiting,
            "records_retained": sum(high - low for low, high in self.watermarks.values()),
            "high_watermarks": MetadataValue.json({str(p): high for p, (_, high) in sorted(self.watermarks.items())}),
            "last_committed_checkpoint": self.last_checkpoint_id,
        }


def read_input_state(instance: DagsterInstance, kafka: KafkaResource, lake: LakeResource) -> InputState:
    """The topic's watermarks and how many records wait past the last commit (S3's ledger decides)."""
    watermarks = kafka.record_source().watermarks()
    last = find_last_committed(lake.store(), lake.commit_log, last_committed_hint(instance, lake.commit_log, kafka.topic))
    waiting = backlog(last.end_offsets() if last else {}, watermarks)
    return InputState(kafka.topic, watermarks, last, waiting)


@observable_source_asset(
    key=SOURCE_KEY,
    description="The Kafka topic the pipeline reads: high watermarks and records waiting past the last commit, "
    "observed every 30 seconds by pipeline_health_sensor.",
)
def lineage_input(context: OpExecutionContext, kafka: KafkaResource, lake: LakeResource) -> ObserveResult:
    return ObserveResult(metadata=read_input_state(context.instance, kafka, lake).metadata())


@sensor(
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Every 30 seconds: observes lineage_input (high watermarks, records waiting) and evaluates the "
    "committed_recently check on write_ahead_commit_log. Launches no runs.",
)
def pipeline_health_sensor(context: SensorEvaluationContext, kafka: KafkaResource, lake: LakeResource) -> SensorResult:
    now = datetime.now(UTC)
    state = read_input_state(context.instance, kafka, lake)
    # The cursor remembers since when records have waited, across evaluations.
    since = json.loads(context.cursor).get("waiting_since") if context.cursor else None
    waiting_since = (datetime.fromtimestamp(since, UTC) if since else now) if state.records_waiting else None
    freshness = commit_freshness(now, state.last_commit_at, state.records_waiting, waiting_since)
    return SensorResult(
        asset_events=[
            AssetObservation(asset_key=SOURCE_KEY, metadata=state.metadata()),
            AssetCheckEvaluation(
                asset_key=COMMIT_LOG_KEY,
                check_name=FRESHNESS_CHECK,
                passed=freshness.passed,
                severity=AssetCheckSeverity.ERROR,
                description=freshness.description,
                metadata=freshness_metadata(
                    freshness.records_waiting,
                    freshness.waiting_for.total_seconds() if freshness.waiting_for else 0.0,
                    state.last_checkpoint_id,
                ),
            ),
        ],
        cursor=json.dumps({"waiting_since": waiting_since.timestamp() if waiting_since else None}),
    )
