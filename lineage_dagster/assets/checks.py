"""The invariants of one checkpoint, as Dagster asset checks on `write_ahead_commit_log`.

The commit step evaluates them right after the marker exists, reading everything back from S3, so
they verify what was stored rather than what the step meant to store. They are declared on the
checkpoint asset instead of as a separate check step: one step fewer per run, and no lookup over
the partitions when a run has none (CLI runs).
"""

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetKey, MetadataValue

from lineage_dagster.ledger.health import COMMIT_FRESHNESS_LIMIT
from lineage_dagster.ledger.paths import S3Location, split_uri
from lineage_dagster.ledger.protocol import read_marker
from lineage_dagster.ledger.store import ObjectStore

CHECKS = {
    "offsets_contiguous": "Checkpoint N starts, per partition, exactly where checkpoint N-1 ended.",
    "files_exist": "Every file the commit log lists exists in S3 with the logged size; log and marker agree.",
    "row_counts_match": "Each file's Parquet row count matches the log, and the log's counts match the ranges.",
}


FRESHNESS_CHECK = "committed_recently"
FRESHNESS_DESCRIPTION = (
    f"Fails when records have waited in Kafka for more than {COMMIT_FRESHNESS_LIMIT.total_seconds() / 60:g} minutes with no "
    "checkpoint committed. Passes with each commit; pipeline_health_sensor evaluates it every 30 seconds in between."
)


def freshness_metadata(records_waiting: int, waiting_for_s: float, last_committed_checkpoint: int) -> dict[str, object]:
    """`committed_recently`'s metadata, whether a commit or the health sensor evaluates it."""
    return {
        "records_waiting": records_waiting,
        "waiting_for_s": round(waiting_for_s, 1),
        "last_committed_checkpoint": last_committed_checkpoint,
    }


def checkpoint_check_specs(asset: AssetKey) -> list[AssetCheckSpec]:
    """The invariants, and freshness: the commit step evaluates all four, the health sensor freshness."""
    return [
        *(AssetCheckSpec(name, asset=asset, description=text) for name, text in CHECKS.items()),
        AssetCheckSpec(FRESHNESS_CHECK, asset=asset, description=FRESHNESS_DESCRIPTION),
    ]


def check_output_name(asset: AssetKey, check: str) -> str:
    """The op output Dagster maps a check of a graph-backed asset to."""
    return AssetCheckSpec(check, asset=asset).get_python_identifier()


def evaluate_invariants(
    store: ObjectStore, commit_log: S3Location, checkpoint_id: int, asset: AssetKey
) -> list[AssetCheckResult]:
    from lineage_dagster.ledger.verify import check_checkpoint  # polars: imported only once a checkpoint commits

    marker = read_marker(store, commit_log, checkpoint_id)
    if marker is None:
        raise RuntimeError(f"checkpoint_id={checkpoint_id} has no commit marker in {commit_log}")
    previous = read_marker(store, commit_log, checkpoint_id - 1) if checkpoint_id > 1 else None
    found, _ = check_checkpoint(store, commit_log, marker, previous, lambda uri: store.size(*split_uri(uri)), count_rows=True)
    return [
        AssetCheckResult(
            check_name=name,
            asset_key=asset,
            passed=not violations,
            severity=AssetCheckSeverity.ERROR,
            metadata={
                "checkpoint_id": checkpoint_id,
                "violations": MetadataValue.md("\n".join(f"- {v}" for v in violations) or "none"),
            },
        )
        for name, violations in (
            ("offsets_contiguous", found.contiguity),
            ("files_exist", found.files),
            ("row_counts_match", found.counts),
        )
    ]
