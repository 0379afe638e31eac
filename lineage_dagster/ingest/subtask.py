"""One subtask of one checkpoint: read its planned ranges, decode, write its Parquet files.

Output is a pure function of (plan, subtask, Kafka contents): rows are ordered by partition and
offset and keys are deterministic, so a retry rewrites identical bytes to identical keys.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Protocol

import numpy as np
import polars as pl

from lineage_dagster.clients.kafka import RecordBatch
from lineage_dagster.ingest.bulk_decode import decode_batch
from lineage_dagster.ledger.commit_log import FileKind, FileSlice, SubtaskFiles, WrittenFile
from lineage_dagster.ledger.paths import S3Location, data_file_key, split_file_key
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
# Values per Parquet row group: a seed-record subtask file (~500k rows) gets 5 groups.
ROW_GROUP_BYTES = 8 * 1024 * 1024


class RecordSource(Protocol):
    def read_ranges(self, ranges: Sequence[PartitionRange]) -> Iterator[RecordBatch]: ...


def _rows(frame: pl.DataFrame | None, mask: np.ndarray) -> pl.DataFrame | None:
    return frame.filter(pl.Series(mask)) if frame is not None and mask.any() else None


def _split_off(frames: list[pl.DataFrame], partition: int) -> tuple[list[pl.DataFrame], list[pl.DataFrame]]:
    """The rows of one partition, and the rest; frames of one partition are taken whole."""
    taken, rest = [], []
    for frame in frames:
        partitions = frame["kafka_partition"]
        if partitions.min() == partitions.max():
            (taken if partitions[0] == partition else rest).append(frame)
        else:
            mine = partitions == partition
            taken.append(frame.filter(mine))
            rest.append(frame.filter(~mine))
    return [f for f in taken if f.height], [f for f in rest if f.height]


def _value_bytes(frame: pl.DataFrame) -> int:
    """About the bytes of the frame's values: string and binary lengths, 8 a value for the rest.
    Unlike `estimated_size`, it does not depend on how the frame's buffers were built, so a retry
    (whose consume calls may batch the records differently) computes the same number."""
    total = 0
    for name, dtype in frame.schema.items():
        if dtype == pl.String:
            total += frame[name].str.len_bytes().sum() or 0
        elif dtype == pl.Binary:
            total += frame[name].bin.size().sum() or 0
        else:
            total += 8 * frame.height
    return total


def row_group_rows(frame: pl.DataFrame) -> int:
    """Rows per Parquet row group, so that each holds about ROW_GROUP_BYTES of values.

    polars encodes a row group in memory at several times its size: a file of large records written
    as one group (its default is 512² rows) briefly takes several times the file. With groups
    bounded by bytes it takes the file plus a few groups' worth.
    """
    return max(1, frame.height * ROW_GROUP_BYTES // max(_value_bytes(frame), 1))


class _ByteSink:
    """Where polars writes a Parquet file: a bytearray, which the S3 client sends as it is
    (`BytesIO.getvalue()` copied every file once more: one file's size per subtask at the peak)."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, chunk: bytes) -> int:
        self.data += chunk
        return len(chunk)

    def flush(self) -> None:
        pass


def parquet_bytes(frame: pl.DataFrame) -> bytearray:
    """zstd level 1: about half the size of snappy at a fraction of zstd's default cost."""
    out = _ByteSink()
    frame.write_parquet(out, compression="zstd", compression_level=1, statistics=True, row_group_size=row_group_rows(frame))
    return out.data


# A frame whose partition changes more often than once per this many rows is sorted before it is
# cut into runs: each run costs a slice, a sort costs per row.
MIN_ROWS_PER_RUN = 256


def _partition_changes(frame: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The frame's partition column, and the rows where it differs from the row before."""
    partitions = frame["kafka_partition"].to_numpy()
    return partitions, np.flatnonzero(np.diff(partitions)) + 1


def _ordered(frames: list[pl.DataFrame]) -> pl.DataFrame:
    """Rows by partition, then offset: the file is then a function of the plan alone.

    Kafka delivers each partition in offset order, and librdkafka hands over the records a fetch
    response holds of one partition together, in a few runs per batch. So each frame is cut where
    its partition changes and the runs are joined by partition, into one contiguous frame whatever
    the batches were: several times cheaper than a stable sort by partition. The offsets are checked
    and fully sorted if ever not so.
    """
    runs: dict[int, list[pl.DataFrame]] = {}
    for frame in frames:
        if not frame.height:
            continue
        partitions, changes = _partition_changes(frame)
        if len(changes) * MIN_ROWS_PER_RUN > frame.height:
            frame = frame.sort("kafka_partition", maintain_order=True)
            partitions, changes = _partition_changes(frame)
        for start, end in zip([0, *changes], [*changes, frame.height], strict=True):
            runs.setdefault(int(partitions[start]), []).append(frame.slice(start, end - start))
    frame = pl.concat([run for partition in sorted(runs) for run in runs[partition]], how="vertical", rechunk=True)
    partitions = frame["kafka_partition"].to_numpy()
    offsets = frame["kafka_offset"].to_numpy()
    descents = np.flatnonzero(offsets[1:] <= offsets[:-1])  # where a partition ends, or is out of order
    if (partitions[descents] == partitions[descents + 1]).any():
        frame = frame.sort("kafka_partition", "kafka_offset")
    return frame


class _SubtaskWriter:
    """Holds one subtask's decoded and undecodable rows until it writes them as Parquet.

    Memory is bounded by the plan's `buffer_bytes`, whatever the records' sizes: each partition may
    hold an equal share of it (`split_bytes`) of Kafka payload. A record belongs to segment
    (payload bytes of its partition's earlier records in the range) // split_bytes, a function of
    the plan and Kafka's contents alone. When a partition's records reach a new segment, the
    buffered one is written to files of its own, so a retry splits at the same offsets and writes
    the same objects. What is buffered at the end goes to the subtask's file. At the defaults a
    checkpoint of seed-sized records (~43 bytes) never splits.
    """

    def __init__(
        self, *, plan: CheckpointPlan, subtask: int, store: ObjectStore, output: S3Location, dropped: S3Location
    ) -> None:
        self.plan, self.subtask, self.store = plan, subtask, store
        self.locations: dict[FileKind, S3Location] = {"data": output, "dropped": dropped}
        self.ranges = sorted(plan.ranges_for_subtask(subtask))
        self.split_bytes = plan.split_bytes(subtask)
        size = max((r.partition for r in self.ranges), default=0) + 1
        self.frames: dict[FileKind, list[pl.DataFrame]] = {"data": [], "dropped": []}
        self.bytes_read = np.zeros(size, dtype=np.int64)  # payload bytes per partition so far
        self.segment = np.zeros(size, dtype=np.int64)  # segment of each partition's buffered rows
        self.segment_start = np.zeros(size, dtype=np.int64)  # and the offset it starts at
        for r in self.ranges:
            self.segment_start[r.partition] = r.start
        self.files: list[WrittenFile] = []

    def add_batch(self, batch: RecordBatch, max_record_bytes: int) -> None:
        decoded = decode_batch(batch.values, max_record_bytes, batch.payload_bytes)
        good = None
        if len(decoded.indexes):
            good = pl.DataFrame(
                {
                    "uuid": decoded.uuids,
                    "timestamp": decoded.timestamps,
                    "kafka_partition": batch.partitions[decoded.indexes],
                    "kafka_offset": batch.offsets[decoded.indexes],
                }
            )
        bad = np.array(sorted(decoded.errors), dtype=np.int64)  # batch positions
        segments = self._segments(batch.partitions, decoded.payload_lengths)
        if segments is None:
            self._hold(good, self._dead_letters(batch, decoded.errors, bad))
            return
        current = segments == self.segment[batch.partitions]
        self._hold(_rows(good, current[decoded.indexes]), self._dead_letters(batch, decoded.errors, bad[current[bad]]))
        for partition in np.unique(batch.partitions[~current]):
            later = ~current & (batch.partitions == partition)
            for segment in np.unique(segments[later]):
                in_segment = later & (segments == segment)
                start = int(batch.offsets[np.argmax(in_segment)])
                self._write_split(int(partition), end=start)
                self.segment[partition], self.segment_start[partition] = segment, start
                dead_letters = self._dead_letters(batch, decoded.errors, bad[in_segment[bad]])
                self._hold(_rows(good, in_segment[decoded.indexes]), dead_letters)

    def _dead_letters(self, batch: RecordBatch, errors: dict[int, str], rows: np.ndarray) -> list[pl.DataFrame]:
        """The undecodable records at batch positions `rows`, one frame per partition built from the
        raw bytes themselves: a frame filtered out of a shared one would keep the whole batch's
        payload buffer alive until its last row is written."""
        frames = []
        for partition in np.unique(batch.partitions[rows]):
            mine = rows[batch.partitions[rows] == partition]
            frames.append(
                pl.DataFrame(
                    {
                        "kafka_topic": [self.plan.topic] * len(mine),
                        "kafka_partition": batch.partitions[mine],
                        "kafka_offset": batch.offsets[mine],
                        "kafka_timestamp": batch.timestamps[mine],
                        "kafka_key": [batch.keys[i] for i in mine],
                        "raw_value": [batch.values[i] for i in mine],
                        "error": [errors[i] for i in mine],
                        "checkpoint_id": [self.plan.checkpoint_id] * len(mine),
                    },
                    schema=DROPPED_SCHEMA,
                )
            )
        return frames

    def _segments(self, partitions: np.ndarray, lengths: np.ndarray) -> np.ndarray | None:
        """Each record's segment; None when every record is in its partition's current one."""
        if self.split_bytes is None:
            return None
        sizes = np.maximum(lengths, 0)
        before = self.bytes_read.copy()
        self.bytes_read += np.bincount(partitions, weights=sizes, minlength=len(before)).astype(np.int64)
        if (self.bytes_read < (self.segment + 1) * self.split_bytes).all():
            return None
        segments = np.empty(len(sizes), dtype=np.int64)
        for partition in np.unique(partitions):
            rows = partitions == partition
            ends = before[partition] + np.cumsum(sizes[rows])
            segments[rows] = (ends - sizes[rows]) // self.split_bytes
        return segments

    def _hold(self, good: pl.DataFrame | None, dead_letters: list[pl.DataFrame]) -> None:
        if good is not None:
            self.frames["data"].append(good)
        self.frames["dropped"].extend(dead_letters)

    def _write_split(self, partition: int, end: int) -> None:
        start = int(self.segment_start[partition])
        for kind, location in self.locations.items():
            frames, self.frames[kind] = _split_off(self.frames[kind], partition)
            if frames:
                key = split_file_key(location, self.plan.hour, self.plan.checkpoint_id, self.subtask, partition, start)
                self._write(kind, key, frames, {partition: end})
        log.info(
            "checkpoint_id=%s subtask=%s partition=%s: offsets [%s, %s) filled the partition's share of "
            "SUBTASK_BUFFER_BYTES (%s bytes) and were written to files of their own",
            self.plan.checkpoint_id,
            self.subtask,
            partition,
            start,
            end,
            self.split_bytes,
        )

    def finish(self) -> SubtaskFiles:
        """Write what is still held to the subtask's data and dead-letter files."""
        for kind, location in self.locations.items():
            if self.frames[kind]:
                key = data_file_key(location, self.plan.hour, self.plan.checkpoint_id, self.subtask)
                self._write(kind, key, self.frames[kind], {r.partition: r.end for r in self.ranges})
        files = tuple(sorted(self.files, key=lambda w: (w.kind, w.uri)))
        return SubtaskFiles(checkpoint_id=self.plan.checkpoint_id, subtask=self.subtask, files=files)

    def _write(self, kind: FileKind, key: str, frames: list[pl.DataFrame], ends: dict[int, int]) -> None:
        """One Parquet file of the held `frames`; each partition's slice runs from the start of its
        held segment to `ends[partition]`."""
        frame = _ordered(frames)
        counts = np.bincount(frame["kafka_partition"].to_numpy(), minlength=len(self.segment_start))
        slices = tuple(
            FileSlice(partition, int(self.segment_start[partition]), end, int(counts[partition]))
            for partition, end in sorted(ends.items())
            if counts[partition]
        )
        if kind == "data":
            frame = frame.with_columns(
                pl.lit(self.plan.topic, pl.String).alias("kafka_topic"),
                pl.col("kafka_partition").cast(pl.Int32),
                pl.lit(self.plan.checkpoint_id, pl.Int64).alias("checkpoint_id"),
            ).select(list(DATA_SCHEMA))
        else:
            frame = frame.select(list(DROPPED_SCHEMA))
        body = parquet_bytes(frame)
        location = self.locations[kind]
        self.store.put(location.bucket, key, body)
        uri = location.uri(key)
        self.files.append(WrittenFile(uri=uri, kind=kind, subtask=self.subtask, size_bytes=len(body), slices=slices))
        if kind == "dropped":
            log.warning(
                "checkpoint_id=%s subtask=%s dropped %s undecodable records to %s",
                self.plan.checkpoint_id,
                self.subtask,
                frame.height,
                uri,
            )


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
    writer = _SubtaskWriter(plan=plan, subtask=subtask, store=store, output=output, dropped=dropped)
    for batch in source.read_ranges(writer.ranges):
        writer.add_batch(batch, max_record_bytes)
        del batch  # not held while the next one is read: with large records, BATCH_BYTES more at the peak
    return writer.finish()
