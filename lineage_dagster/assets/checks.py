"""Asset checks run after every checkpoint's commit: the invariants of that one checkpoint."""

from collections.abc import Iterator

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    MetadataValue,
    multi_asset_check,
)

from lineage_dagster.assets.checkpoint import CHECKPOINT_TAG, COMMIT_LOG_KEY
from lineage_dagster.ledger.paths import split_uri
from lineage_dagster.ledger.protocol import read_marker
from lineage_dagster.ledger.verify import check_checkpoint
from lineage_dagster.resources.lake import LakeResource

CHECKS = {
    "offsets_contiguous": "Checkpoint N starts, per partition, exactly where checkpoint N-1 ended.",
    "files_exist": "Every file the commit log lists exists in S3 with the logged size; log and marker agree.",
    "row_counts_match": "Each file's Parquet row count matches the log, and the log's counts match the ranges.",
}


@multi_asset_check(specs=[AssetCheckSpec(name, asset=COMMIT_LOG_KEY, description=text) for name, text in CHECKS.items()])
def checkpoint_invariants(context: AssetCheckExecutionContext, lake: LakeResource) -> Iterator[AssetCheckResult]:
    # The plan step tagged the run after it started: read the stored run, not the cached one.
    run = context.instance.get_run_by_id(context.run.run_id)
    checkpoint_id = int(run.tags[CHECKPOINT_TAG]) if run and CHECKPOINT_TAG in run.tags else 0
    store = lake.store()
    marker = read_marker(store, lake.commit_log, checkpoint_id)
    if marker is None:
        raise RuntimeError(f"checkpoint_id={checkpoint_id} has no commit marker; the commit step did not commit it")
    previous = read_marker(store, lake.commit_log, checkpoint_id - 1) if checkpoint_id > 1 else None
    found, _ = check_checkpoint(
        store, lake.commit_log, marker, previous, lambda uri: store.size(*split_uri(uri)), count_rows=True
    )
    for name, violations in (
        ("offsets_contiguous", found.contiguity),
        ("files_exist", found.files),
        ("row_counts_match", found.counts),
    ):
        if violations:
            context.log.error(f"checkpoint_id={checkpoint_id} check {name} failed: {violations}")
        yield AssetCheckResult(
            check_name=name,
            asset_key=COMMIT_LOG_KEY,
            passed=not violations,
            severity=AssetCheckSeverity.ERROR,
            metadata={
                "checkpoint_id": checkpoint_id,
                "violations": MetadataValue.md("\n".join(f"- {v}" for v in violations) or "none"),
            },
        )
