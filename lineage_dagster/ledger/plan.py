"""Checkpoint plans: which offsets of which partitions checkpoint N covers, and who writes them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

from lineage_dagster.ledger.paths import hour_key, hour_start


class OffsetsLostError(RuntimeError):
    """The planned start offset is no longer in Kafka (retention or truncation deleted it)."""


class SettingsMismatchError(RuntimeError):
    """A step runs with other settings than its checkpoint was planned with; it wrote nothing."""


@dataclass(frozen=True, order=True)
class PartitionRange:
    """Offsets `[start, end)` of one Kafka partition."""

    partition: int
    start: int
    end: int

    @property
    def count(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class CheckpointPlan:
    checkpoint_id: int
    topic: str
    hour: datetime
    planned_at_ms: int
    run_id: str
    parallelism: int
    ranges: tuple[PartitionRange, ...]
    # Offsets deleted from Kafka before they were read, skipped by the operator's ALLOW_OFFSET_LOSS.
    lost: tuple[PartitionRange, ...] = ()
    # SUBTASK_BUFFER_BYTES when planned: fixed here so every attempt splits files at the same
    # offsets. None in plans stored before it existed: they are finished unsplit, as planned.
    buffer_bytes: int | None = None
    # MAX_RECORD_BYTES when planned, for the same reason: a retry that rewrites some subtasks must
    # drop exactly the records the first attempt did. None in plans stored before it existed.
    max_record_bytes: int | None = None
    # Where the checkpoint's files go. None in plans stored before they were recorded.
    output_path: str | None = None
    dropped_path: str | None = None
    commit_log_path: str | None = None

    @property
    def record_count(self) -> int:
        return sum(r.count for r in self.ranges)

    def end_offsets(self) -> dict[int, int]:
        return {r.partition: r.end for r in self.ranges}

    def ranges_for_subtask(self, subtask: int) -> list[PartitionRange]:
        return [r for r in self.ranges if subtask_of_partition(r.partition, self.parallelism) == subtask]

    def split_bytes(self, subtask: int) -> int | None:
        """Payload bytes of one partition that a subtask holds before writing them to files of their
        own: its equal share of the subtask's buffer. None: never split."""
        if self.buffer_bytes is None:
            return None
        reading = sum(1 for r in self.ranges_for_subtask(subtask) if r.count)
        return max(self.buffer_bytes // max(reading, 1), 1)

    def to_json(self) -> bytes:
        body = asdict(self)
        body["hour"] = self.hour.isoformat()
        body["ranges"] = [asdict(r) for r in self.ranges]
        body["lost"] = [asdict(r) for r in self.lost]
        return json.dumps(body, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> CheckpointPlan:
        body = json.loads(raw)
        return cls(
            checkpoint_id=int(body["checkpoint_id"]),
            topic=body["topic"],
            hour=datetime.fromisoformat(body["hour"]).astimezone(UTC),
            planned_at_ms=int(body["planned_at_ms"]),
            run_id=body["run_id"],
            parallelism=int(body["parallelism"]),
            ranges=tuple(PartitionRange(**r) for r in body["ranges"]),
            lost=tuple(PartitionRange(**r) for r in body.get("lost", ())),
            buffer_bytes=body.get("buffer_bytes"),
            max_record_bytes=body.get("max_record_bytes"),
            output_path=body.get("output_path"),
            dropped_path=body.get("dropped_path"),
            commit_log_path=body.get("commit_log_path"),
        )

    def planned_with(self) -> dict[str, str]:
        """The settings this plan fixed, by variable name: every step that works on it must share them."""
        settings = {
            "KAFKA_TOPIC": self.topic,
            "PARALLELISM": str(self.parallelism),
            "OUTPUT_PATH": self.output_path,
            "DROPPED_PATH": self.dropped_path,
            "WRITE_AHEAD_COMMIT_LOG_PATH": self.commit_log_path,
        }
        return {name: value for name, value in settings.items() if value is not None}


def check_settings(here: Mapping[str, str], expected: Mapping[str, str], *, context: str, source: str) -> None:
    """Fail, naming each variable, where this process's settings (`here`) differ from `expected`.

    Steps read their settings where they run (a Celery worker on another machine, say): a worker
    configured apart from the code location must not write a checkpoint elsewhere."""
    differing = [
        f"{name}={here.get(name)!r} here but {value!r} {source}" for name, value in expected.items() if here.get(name) != value
    ]
    if differing:
        raise SettingsMismatchError(
            f"{context}: {'; '.join(differing)}. Nothing was written. A checkpoint is finished with the settings "
            "it was planned with, and the code location and every process that runs its steps (Celery workers "
            "included) must share them"
        )


class WrongHourError(RuntimeError):
    """A run for one hour's partition would plan or finish a checkpoint of another hour; nothing was written."""


# The schedule picks a run's hour a moment before Dagster creates the run: a run created in the
# first minute of an hour may still be the previous hour's.
LAUNCH_GRACE = timedelta(minutes=1)


def check_new_plan_hour(partition_hour: datetime, launched_at: datetime) -> None:
    """A new checkpoint lands in the hour its run was launched in: refuse a run for any other hour's
    partition (a past or future one picked in the UI, a backfill) before it plans anything."""
    if hour_start(launched_at - LAUNCH_GRACE) <= partition_hour <= hour_start(launched_at):
        return
    raise WrongHourError(
        f"refused: this run is for partition {hour_key(partition_hour)} but was launched in hour "
        f"{hour_key(launched_at)}; a checkpoint lands in the hour it is planned in, so only the current hour's "
        "partition can plan one (to redo a failed checkpoint, re-execute its run). Nothing was written"
    )


def check_pending_plan_hour(plan: CheckpointPlan, partition_hour: datetime) -> None:
    """A stored, uncommitted plan is finished first, by a run for its own hour's partition."""
    if plan.hour == partition_hour:
        return
    raise WrongHourError(
        f"refused: checkpoint {plan.checkpoint_id} was planned in hour {hour_key(plan.hour)} and is not committed "
        f"yet; it must be finished first, by re-executing its run or by a run for partition {hour_key(plan.hour)} "
        f"(the schedule launches one), not {hour_key(partition_hour)}. Nothing was written"
    )


def subtask_of_partition(partition: int, parallelism: int) -> int:
    """Partitions are dealt to subtasks round-robin, so every subtask gets a fair, stable share."""
    return partition % parallelism


def share_records(available: Mapping[int, int], max_records: int) -> dict[int, int]:
    """Split a record budget across partitions fairly (water-filling), so no partition starves."""
    shares: dict[int, int] = {}
    remaining = max_records
    by_need = sorted(available.items(), key=lambda item: (item[1], item[0]))
    for index, (partition, want) in enumerate(by_need):
        fair = remaining // (len(by_need) - index)
        shares[partition] = min(want, fair)
        remaining -= shares[partition]
    return shares


def backlog(committed_ends: Mapping[int, int], watermarks: Mapping[int, tuple[int, int]]) -> int:
    """Records waiting in Kafka past the committed end offsets (a new partition from its earliest)."""
    return sum(max(high - max(committed_ends.get(p, low), low), 0) for p, (low, high) in watermarks.items())


def plan_checkpoint(
    *,
    checkpoint_id: int,
    topic: str,
    hour: datetime,
    committed_ends: Mapping[int, int],
    watermarks: Mapping[int, tuple[int, int]],
    max_records: int,
    parallelism: int,
    run_id: str,
    planned_at_ms: int,
    allow_offset_loss: bool = False,
    buffer_bytes: int | None = None,
    max_record_bytes: int | None = None,
    output_path: str | None = None,
    dropped_path: str | None = None,
    commit_log_path: str | None = None,
) -> CheckpointPlan:
    """Plan checkpoint N: each partition from its last committed end up to its high watermark.

    A partition never committed before starts at its low watermark (its earliest offset), so a
    partition added to the topic is read from the beginning. Partitions with nothing new keep a
    zero-length range so the plan always carries every partition's end offset. Offsets deleted
    before they were read fail the plan, unless the operator allows the loss: then the plan starts
    at the earliest offset left and records what was lost.
    """
    starts: dict[int, int] = {}
    lost: list[PartitionRange] = []
    for partition, (low, high) in sorted(watermarks.items()):
        start = committed_ends.get(partition, low)
        if start < low and allow_offset_loss:
            lost.append(PartitionRange(partition, start, low))
            start = low
        elif start < low:
            raise OffsetsLostError(
                f"topic {topic!r} partition {partition}: offsets [{start}, {low}) were deleted from Kafka "
                f"before checkpoint {checkpoint_id} could read them (retention or truncation); to skip them "
                "knowingly, set ALLOW_OFFSET_LOSS=true for one run (the loss is recorded in the ledger)"
            )
        if start > high:
            raise OffsetsLostError(
                f"topic {topic!r} partition {partition}: committed offset {start} is past the high watermark "
                f"{high}; was the topic deleted and re-created?"
            )
        starts[partition] = start
    missing = sorted(set(committed_ends) - set(watermarks))
    if missing:
        raise OffsetsLostError(f"topic {topic!r} no longer has partitions {missing} that earlier checkpoints read")
    available = {p: watermarks[p][1] - start for p, start in starts.items()}
    shares = share_records(available, max_records)
    ranges = tuple(PartitionRange(p, start, start + shares[p]) for p, start in sorted(starts.items()))
    return CheckpointPlan(
        checkpoint_id=checkpoint_id,
        topic=topic,
        hour=hour,
        planned_at_ms=planned_at_ms,
        run_id=run_id,
        parallelism=parallelism,
        ranges=ranges,
        lost=tuple(lost),
        buffer_bytes=buffer_bytes,
        max_record_bytes=max_record_bytes,
        output_path=output_path,
        dropped_path=dropped_path,
        commit_log_path=commit_log_path,
    )
