"""Commit-log records: files a subtask wrote, the `subtask-K.csv` rows, and the commit marker.

The CSV keeps the seed's three columns first (`checkpoint_id,s3_key,commit_timestamp`) and adds
the lineage the seed lacked after them. A file holding records of several Kafka partitions gets
one row per partition, so every row carries one partition's offset range and record count.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from typing import Literal

from lineage_dagster.ledger.plan import CheckpointPlan, PartitionRange

FileKind = Literal["data", "dropped"]

CSV_COLUMNS = (
    "checkpoint_id",
    "s3_key",
    "commit_timestamp",
    "run_id",
    "kind",
    "kafka_topic",
    "kafka_partition",
    "start_offset",
    "end_offset",
    "record_count",
    "file_bytes",
)


@dataclass(frozen=True)
class FileSlice:
    """The records of one Kafka partition inside one file; `[start, end)` is the planned range."""

    partition: int
    start: int
    end: int
    record_count: int


@dataclass(frozen=True)
class WrittenFile:
    uri: str
    kind: FileKind
    subtask: int
    size_bytes: int
    slices: tuple[FileSlice, ...]

    @property
    def record_count(self) -> int:
        return sum(s.record_count for s in self.slices)


@dataclass(frozen=True)
class SubtaskFiles:
    """What one subtask wrote for one checkpoint."""

    checkpoint_id: int
    subtask: int
    files: tuple[WrittenFile, ...]

    @property
    def record_count(self) -> int:
        return sum(f.record_count for f in self.files if f.kind == "data")

    @property
    def dropped_count(self) -> int:
        return sum(f.record_count for f in self.files if f.kind == "dropped")


@dataclass(frozen=True)
class CommitLogRow:
    checkpoint_id: int
    s3_key: str
    commit_timestamp: int
    run_id: str
    kind: FileKind
    kafka_topic: str
    kafka_partition: int
    start_offset: int
    end_offset: int
    record_count: int
    file_bytes: int

    def file_identity(self) -> tuple[str, str, int, int, int, int, int]:
        """What must match between two attempts at the same checkpoint (not who or when)."""
        return (
            self.s3_key,
            self.kind,
            self.kafka_partition,
            self.start_offset,
            self.end_offset,
            self.record_count,
            self.file_bytes,
        )


def commit_log_rows(plan: CheckpointPlan, files: SubtaskFiles, run_id: str, commit_timestamp: int) -> list[CommitLogRow]:
    return [
        CommitLogRow(
            checkpoint_id=plan.checkpoint_id,
            s3_key=written.uri,
            commit_timestamp=commit_timestamp,
            run_id=run_id,
            kind=written.kind,
            kafka_topic=plan.topic,
            kafka_partition=piece.partition,
            start_offset=piece.start,
            end_offset=piece.end,
            record_count=piece.record_count,
            file_bytes=written.size_bytes,
        )
        for written in files.files
        for piece in written.slices
    ]


def render_csv(rows: list[CommitLogRow]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows([getattr(row, column) for column in CSV_COLUMNS] for row in rows)
    return out.getvalue().encode()


_INT_COLUMNS = {
    "checkpoint_id",
    "commit_timestamp",
    "kafka_partition",
    "start_offset",
    "end_offset",
    "record_count",
    "file_bytes",
}


def parse_csv(raw: bytes) -> list[CommitLogRow]:
    reader = csv.DictReader(io.StringIO(raw.decode()))
    if tuple(reader.fieldnames or ()) != CSV_COLUMNS:
        raise ValueError(f"unexpected commit-log header {reader.fieldnames}")
    return [
        CommitLogRow(**{k: int(v) if k in _INT_COLUMNS else v for k, v in record.items()})  # type: ignore[arg-type]
        for record in reader
    ]


@dataclass(frozen=True)
class CommitMarker:
    """`chk-N/_committed.json`: the commit point. Holds every partition's end offset, so the next
    checkpoint can be planned from S3 alone."""

    checkpoint_id: int
    run_id: str
    committed_at_ms: int
    topic: str
    hour: str
    ranges: tuple[PartitionRange, ...]
    files: tuple[str, ...]
    record_count: int
    dropped_count: int
    lost: tuple[PartitionRange, ...] = ()  # offsets skipped with ALLOW_OFFSET_LOSS, see CheckpointPlan

    def end_offsets(self) -> dict[int, int]:
        return {r.partition: r.end for r in self.ranges}

    def to_json(self) -> bytes:
        body = asdict(self)
        body["ranges"] = [asdict(r) for r in self.ranges]
        body["lost"] = [asdict(r) for r in self.lost]
        body["files"] = list(self.files)
        return json.dumps(body, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> CommitMarker:
        body = json.loads(raw)
        body["ranges"] = tuple(PartitionRange(**r) for r in body["ranges"])
        body["lost"] = tuple(PartitionRange(**r) for r in body.get("lost", ()))
        body["files"] = tuple(body["files"])
        return cls(**body)
