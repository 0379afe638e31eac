"""The checkpoint protocol on top of an ObjectStore: find where we are, plan, log, commit.

Every ledger object is created once (`If-None-Match: *`) and never changed, so a retry, a
re-execution or a zombie run of the same checkpoint can only agree with what is there or fail.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from lineage_dagster.ledger.commit_log import (
    CommitLogRow,
    CommitMarker,
    SubtaskFiles,
    commit_log_rows,
    parse_csv,
    render_csv,
)
from lineage_dagster.ledger.paths import (
    S3Location,
    checkpoint_id_of_prefix,
    marker_key,
    plan_key,
    subtask_log_key,
)
from lineage_dagster.ledger.plan import CheckpointPlan
from lineage_dagster.ledger.store import MAX_CONCURRENT_REQUESTS, ObjectStore


class LedgerError(RuntimeError):
    """The S3 ledger disagrees with what this run expected; nothing further was written."""


class StaleRunError(LedgerError):
    """Another run already committed this checkpoint; this run committed nothing."""


def read_marker(store: ObjectStore, log: S3Location, checkpoint_id: int) -> CommitMarker | None:
    raw = store.get(log.bucket, marker_key(log, checkpoint_id))
    return CommitMarker.from_json(raw) if raw is not None else None


def read_plan(store: ObjectStore, log: S3Location, checkpoint_id: int) -> CheckpointPlan | None:
    raw = store.get(log.bucket, plan_key(log, checkpoint_id))
    return CheckpointPlan.from_json(raw) if raw is not None else None


def checkpoint_ids(store: ObjectStore, log: S3Location) -> list[int]:
    """Every checkpoint id that has a folder in the commit log, ascending."""
    folders = store.list_prefixes(log.bucket, log.key("") + "/" if log.prefix else "")
    return sorted(i for i in (checkpoint_id_of_prefix(f) for f in folders) if i is not None)


def find_last_committed(store: ObjectStore, log: S3Location, hint: int | None) -> CommitMarker | None:
    """The newest committed checkpoint according to S3.

    `hint` is the last commit Dagster recorded. S3 is the truth: the hint must exist, and a later
    marker (Dagster lost the metadata after the commit) moves us forward. Without a hint (a new or
    wiped Dagster instance) the commit-log folders are listed.
    """
    if hint is None:
        for candidate in reversed(checkpoint_ids(store, log)):
            marker = read_marker(store, log, candidate)
            if marker is not None:
                return marker
        return None
    last = read_marker(store, log, hint)
    if last is None:
        raise LedgerError(
            f"Dagster recorded checkpoint {hint} as committed but {log}/chk-{hint}/_committed.json does not "
            "exist; check WRITE_AHEAD_COMMIT_LOG_PATH points at this pipeline's commit log"
        )
    while (following := read_marker(store, log, last.checkpoint_id + 1)) is not None:
        last = following
    return last


def find_pending_plan(store: ObjectStore, log: S3Location, hint: int | None) -> tuple[CommitMarker | None, CheckpointPlan | None]:
    """The newest committed checkpoint, and the stored plan of the next one if it was planned but
    not committed (a crashed or running attempt), which must be finished before anything new."""
    previous = find_last_committed(store, log, hint)
    return previous, read_plan(store, log, (previous.checkpoint_id if previous else 0) + 1)


@dataclass(frozen=True)
class ResolvedPlan:
    plan: CheckpointPlan
    reused: bool
    previous: CommitMarker | None

    @property
    def nothing_new(self) -> bool:
        """A fresh plan with no records and no lost offsets: it is not stored, nothing is committed."""
        return not self.reused and self.plan.record_count == 0 and not self.plan.lost


def resolve_plan(
    store: ObjectStore,
    log: S3Location,
    hint: int | None,
    make_plan: Callable[[int, dict[int, int]], CheckpointPlan],
) -> ResolvedPlan:
    """Checkpoint N = last committed + 1; finish its stored plan if one exists, else plan it now.

    The new plan is created with `If-None-Match: *`; if another run planned N first, its plan wins.
    A new plan with nothing in it is not stored: an idle topic leaves no empty checkpoints behind.
    A stored plan is always finished, even an empty one, since its ranges can never change.
    """
    previous, stored = find_pending_plan(store, log, hint)
    checkpoint_id = (previous.checkpoint_id if previous else 0) + 1
    if stored is not None:
        return ResolvedPlan(stored, reused=True, previous=previous)
    plan = make_plan(checkpoint_id, previous.end_offsets() if previous else {})
    fresh = ResolvedPlan(plan, reused=False, previous=previous)
    if fresh.nothing_new or store.put_if_absent(log.bucket, plan_key(log, checkpoint_id), plan.to_json()):
        return fresh
    stored = read_plan(store, log, checkpoint_id)
    if stored is None:
        raise LedgerError(f"plan of checkpoint {checkpoint_id} was refused as existing but cannot be read")
    return ResolvedPlan(stored, reused=True, previous=previous)


def fence(store: ObjectStore, log: S3Location, checkpoint_id: int, run_ids: Collection[str]) -> CommitMarker | None:
    """Fail if checkpoint N was committed by a run other than this one (or its retried ancestors)."""
    marker = read_marker(store, log, checkpoint_id)
    if marker is not None and marker.run_id not in run_ids:
        raise StaleRunError(
            f"checkpoint {checkpoint_id} was already committed by run {marker.run_id}; this run is stale and changed nothing"
        )
    return marker


def write_subtask_log(
    store: ObjectStore,
    log: S3Location,
    plan: CheckpointPlan,
    files: SubtaskFiles,
    run_id: str,
    commit_timestamp: int,
) -> list[CommitLogRow]:
    """Create `chk-N/subtask-K.csv` once. An earlier attempt's log is kept if it lists the same files."""
    rows = commit_log_rows(plan, files, run_id, commit_timestamp)
    key = subtask_log_key(log, plan.checkpoint_id, files.subtask)
    if store.put_if_absent(log.bucket, key, render_csv(rows)):
        return rows
    existing = parse_csv(store.get(log.bucket, key) or b"")
    if sorted(r.file_identity() for r in existing) != sorted(r.file_identity() for r in rows):
        raise LedgerError(
            f"{log.uri(key)} already lists different files than this attempt wrote; "
            "the checkpoint's data changed between attempts"
        )
    return existing


def check_coverage(plan: CheckpointPlan, files: Iterable[SubtaskFiles]) -> None:
    """Every planned offset must be accounted for by data or dropped records, no more, no less."""
    counted: dict[int, int] = {}
    for subtask_files in files:
        for written in subtask_files.files:
            for piece in written.slices:
                counted[piece.partition] = counted.get(piece.partition, 0) + piece.record_count
    for planned in plan.ranges:
        if counted.get(planned.partition, 0) != planned.count:
            raise LedgerError(
                f"checkpoint {plan.checkpoint_id} partition {planned.partition}: planned {planned.count} records "
                f"[{planned.start}, {planned.end}) but the subtasks accounted for {counted.get(planned.partition, 0)}"
            )


def commit_checkpoint(
    store: ObjectStore,
    log: S3Location,
    plan: CheckpointPlan,
    files: list[SubtaskFiles],
    run_id: str,
    own_run_ids: Collection[str],
    committed_at_ms: int,
    before_marker: Callable[[], None] = lambda: None,
) -> CommitMarker:
    """Write the subtask logs, then the marker: the single commit point of checkpoint N."""
    check_coverage(plan, files)
    fence(store, log, plan.checkpoint_id, own_run_ids)
    # The subtask logs are independent objects: written at once, each a round trip to S3.
    with ThreadPoolExecutor(min(len(files), MAX_CONCURRENT_REQUESTS) or 1, thread_name_prefix="commit-log") as pool:
        list(pool.map(lambda f: write_subtask_log(store, log, plan, f, run_id, committed_at_ms), files))
    before_marker()
    marker = CommitMarker(
        checkpoint_id=plan.checkpoint_id,
        run_id=run_id,
        committed_at_ms=committed_at_ms,
        topic=plan.topic,
        hour=plan.hour.isoformat(),
        ranges=plan.ranges,
        files=tuple(w.uri for f in sorted(files, key=lambda f: f.subtask) for w in f.files),
        record_count=sum(f.record_count for f in files),
        dropped_count=sum(f.dropped_count for f in files),
        lost=plan.lost,
    )
    if store.put_if_absent(log.bucket, marker_key(log, plan.checkpoint_id), marker.to_json()):
        return marker
    # Ambiguous or lost race: the stored marker decides.
    existing = fence(store, log, plan.checkpoint_id, own_run_ids)
    if existing is None:
        raise LedgerError(f"commit marker of checkpoint {plan.checkpoint_id} was refused as existing but cannot be read")
    return existing
