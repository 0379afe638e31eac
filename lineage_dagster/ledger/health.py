"""Is the pipeline keeping up? The rule behind the `committed_recently` check, free of Dagster."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

COMMIT_FRESHNESS_LIMIT = timedelta(minutes=3)


@dataclass(frozen=True)
class CommitFreshness:
    passed: bool
    records_waiting: int
    # How long records have waited with no checkpoint committed; None when nothing waits.
    waiting_for: timedelta | None
    description: str


def commit_freshness(
    now: datetime, last_commit_at: datetime | None, records_waiting: int, waiting_since: datetime | None
) -> CommitFreshness:
    """Fails when records have waited in Kafka for longer than the limit with no checkpoint committed.

    `waiting_since` is when records were first seen waiting after none did: an idle topic that just
    got new records is not late because its last commit is old.
    """
    if not records_waiting:
        return CommitFreshness(True, 0, None, "no records wait in Kafka")
    start = max((t for t in (last_commit_at, waiting_since) if t is not None), default=now)
    waiting_for = max(now - start, timedelta(0))
    minutes = COMMIT_FRESHNESS_LIMIT.total_seconds() / 60
    if waiting_for <= COMMIT_FRESHNESS_LIMIT:
        description = f"{records_waiting} records wait; a checkpoint committed within {minutes:g} minutes"
        return CommitFreshness(True, records_waiting, waiting_for, description)
    return CommitFreshness(
        False,
        records_waiting,
        waiting_for,
        f"{records_waiting} records wait in Kafka and no checkpoint has committed for {waiting_for.total_seconds() / 60:.1f} "
        f"minutes (limit {minutes:g}); look at the latest checkpoint_job runs and the schedule's ticks",
    )
