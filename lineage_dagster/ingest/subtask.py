"""One subtask of one checkpoint: read its planned ranges, decode, write its Parquet files.

Output is a pure function of (plan, subtask, Kafka contents): rows are ordered by partition and
offset and keys are deterministic, so a retry rewrites identical bytes to identical keys.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import polars as pl

from lineage_dagster.clients.kafka import RecordBatch
from lineage_dagster.ingest.avro import decode_events
from lineage_dagster.ledger.commit_log import FileSlice, SubtaskFiles, WrittenFile
from lineage_dagster.ledger.paths import S3Location, data_file_key
from lineage_dagster.ledger.plan import CheckpointPlan, PartitionRange
from lineage_dagster.ledger.store import ObjectStore

log = logging.getLogger(__name__)

DATA_SCHEMA = {
    "uuid": pl.String,
    "timestamp": pl.Int64,
    "kafka_topic": pl.String,
    "kafka_partition": pl.Int32,
    "kafka_offset": pl.Int64,
    "checkpoint_id": pl.Int64,
}
DROPPED_SCHEMA = {
    "kafka_topic": pl.String,
    "kafka_partition": pl.Int32,
    "kafka_offset": pl.Int64,
    "kafka_timestamp": pl.Int64,
    "kafka_key": pl.Binary,
    "raw_value": pl.Binary,
    "error": pl.String,
    "checkpoint_id": pl.Int64,
}


class RecordSource(Protocol):
    def read_ranges(self, ranges: Sequence[PartitionRange]) -> Iterator[RecordBatch]: ...


@dataclass
class _PartitionRows:
    """The decoded and the undecodable records of one partition, in offset order."""

    good: list[pl.DataFrame] = field(default_factory=list)
    bad: list[pl.DataFrame] = field(default_factory=list)
    good_count: int = 0
    bad_count: int = 0


def _decode_batch(batch: RecordBatch, topic: str, checkpoint_id: int, max_record_bytes: int, rows: _PartitionRows) -> None:
    decoded = decode_events(batch.values, max_record_bytes)
    if decoded.indexes:
        offsets = batch.offsets if len(decoded.indexes) == len(batch.offsets) else [batch.offsets[i] for i in decoded.indexes]
        rows.good.append(
            pl.DataFrame(
                {"uuid": decoded.uuids, "timestamp": decoded.timestamps, "kafka_offset": offsets},
                schema={"uuid": pl.String, "timestamp": pl.Int64, "kafka_offset": pl.Int64},
            ).with_columns(
                pl.lit(topic, pl.String).alias("kafka_topic"),
                pl.lit(batch.partition, pl.Int32).alias("kafka_partition"),
                pl.lit(checkpoint_id, pl.Int64).alias("checkpoint_id"),
            )
        )
        rows.good_count += len(decoded.indexes)
    if decoded.errors:
        bad = sorted(decoded.errors)
        rows.bad.append(
            pl.DataFrame(
                {
                    "kafka_topic": [topic] * len(bad),
                    "kafka_partition": [batch.partition] * len(bad),
                    "kafka_offset": [batch.offsets[i] for i in bad],
                    "kafka_timestamp": [batch.timestamps[i] for i in bad],
                    "kafka_key": [batch.keys[i] for i in bad],
                    "raw_value": [batch.values[i] for i in bad],
                    "error": [decoded.errors[i] for i in bad],
                    "checkpoint_id": [checkpoint_id] * len(bad),
                },
                schema=DROPPED_SCHEMA,
            )
        )
        rows.bad_count += len(bad)


def parquet_bytes(frame: pl.DataFrame) -> bytes:
    """zstd level 1: about half the size of snappy at a fraction of zstd's default cost."""
    out = io.BytesIO()
    frame.write_parquet(out, compression="zstd", compression_level=1, statistics=True)
    return out.getvalue()


def _write_file(
    store: ObjectStore,
    location: S3Location,
    key: str,
    frames: Iterable[pl.DataFrame],
    schema: dict[str, pl.DataType],
    kind: str,
    subtask: int,
    slices: list[FileSlice],
) -> WrittenFile:
    frame = pl.concat(list(frames), how="vertical").select(list(schema))
    body = parquet_bytes(frame)
    store.put(location.bucket, key, body)
    return WrittenFile(uri=location.uri(key), kind=kind, subtask=subtask, size_bytes=len(body), slices=tuple(slices))  # type: ignore[arg-type]


def write_subtask_files(
    *,
    plan: CheckpointPlan,
    subtask: int,
    source: RecordSource,
    store: ObjectStore,
    output: S3Location,
    dropped: S3Location,
    max_record_bytes: int,
) -> SubtaskFiles:
    ranges = plan.ranges_for_subtask(subtask)
    by_partition: dict[int, _PartitionRows] = {r.partition: _PartitionRows() for r in ranges}
    for batch in source.read_ranges(ranges):
        _decode_batch(batch, plan.topic, plan.checkpoint_id, max_record_bytes, by_partition[batch.partition])
    files: list[WrittenFile] = []
    ordered = [(r, by_partition[r.partition]) for r in sorted(ranges)]
    good_slices = [FileSlice(r.partition, r.start, r.end, rows.good_count) for r, rows in ordered if rows.good_count]
    if good_slices:
        key = data_file_key(output, plan.hour, plan.checkpoint_id, subtask)
        frames = (frame for _, rows in ordered for frame in rows.good)
        files.append(_write_file(store, output, key, frames, DATA_SCHEMA, "data", subtask, good_slices))
    bad_slices = [FileSlice(r.partition, r.start, r.end, rows.bad_count) for r, rows in ordered if rows.bad_count]
    if bad_slices:
        key = data_file_key(dropped, plan.hour, plan.checkpoint_id, subtask)
        frames = (frame for _, rows in ordered for frame in rows.bad)
        files.append(_write_file(store, dropped, key, frames, DROPPED_SCHEMA, "dropped", subtask, bad_slices))
        log.warning(
            "checkpoint_id=%s subtask=%s dropped %s undecodable records to %s",
            plan.checkpoint_id,
            subtask,
            sum(s.record_count for s in bad_slices),
            files[-1].uri,
        )
    return SubtaskFiles(checkpoint_id=plan.checkpoint_id, subtask=subtask, ranges=tuple(ranges), files=tuple(files))
