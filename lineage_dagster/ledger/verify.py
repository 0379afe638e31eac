"""Checks the four invariants from the S3 ledger: contiguous ranges, complete logs, existing files,
and (deep) every Kafka record exactly once in the committed files."""

from __future__ import annotations

import io
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import polars as pl

from lineage_dagster.ledger.commit_log import CommitLogRow, CommitMarker, parse_csv
from lineage_dagster.ledger.paths import S3Location, checkpoint_prefix, split_uri
from lineage_dagster.ledger.plan import PartitionRange
from lineage_dagster.ledger.protocol import checkpoint_ids, read_marker
from lineage_dagster.ledger.store import MAX_CONCURRENT_REQUESTS, ObjectStore

SizeOf = Callable[[str], int | None]


@dataclass
class CheckpointFindings:
    """Violations found in one committed checkpoint, by the invariant they break."""

    contiguity: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    counts: list[str] = field(default_factory=list)

    def all(self) -> list[str]:
        return self.contiguity + self.files + self.counts


@dataclass
class VerifyReport:
    checkpoints: int = 0
    in_flight: list[int] = field(default_factory=list)
    records: int = 0
    dropped: int = 0
    files: int = 0
    rows_read: int = 0
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "ok": self.ok}


def read_checkpoint_rows(store: ObjectStore, log: S3Location, checkpoint_id: int) -> list[CommitLogRow]:
    prefix = checkpoint_prefix(log, checkpoint_id) + "/"
    rows: list[CommitLogRow] = []
    for key in sorted(store.list_keys(log.bucket, prefix)):
        if key.rsplit("/", 1)[-1].startswith("subtask-") and key.endswith(".csv"):
            rows.extend(parse_csv(store.get(log.bucket, key) or b""))
    return rows


def committed_checkpoints(store: ObjectStore, log: S3Location) -> tuple[list[CommitMarker], list[int]]:
    """Markers of committed checkpoints in order, and ids that have a folder but no marker."""
    markers: list[CommitMarker] = []
    uncommitted: list[int] = []
    for checkpoint_id in checkpoint_ids(store, log):
        marker = read_marker(store, log, checkpoint_id)
        if marker is None:
            uncommitted.append(checkpoint_id)
        else:
            markers.append(marker)
    return markers, uncommitted


_PARQUET_MAGIC = b"PAR1"


def parquet_row_count(store: ObjectStore, uri: str) -> int | None:
    """Rows in a Parquet file from its footer alone: one or two ranged reads, never the whole file.

    A file ends with the footer, its 4-byte length and `PAR1`; the footer is re-framed as a tiny
    Parquet file for Polars to read. None if the file is missing or not Parquet.
    """
    bucket, key = split_uri(uri)
    tail = store.get_tail(bucket, key, 64 * 1024)
    if tail is None or len(tail) < 12 or tail[-4:] != _PARQUET_MAGIC:
        return None
    footer_length = int.from_bytes(tail[-8:-4], "little")
    if footer_length + 8 > len(tail):
        tail = store.get_tail(bucket, key, footer_length + 8) or b""
        if len(tail) != footer_length + 8:
            return None
    footer = _PARQUET_MAGIC + tail[-8 - footer_length :]
    try:  # the row count of a scan comes from the footer's metadata; no page is read
        return int(pl.scan_parquet(io.BytesIO(footer)).select(pl.len()).collect().item())
    except (pl.exceptions.PolarsError, OSError):
        return None


def check_checkpoint(
    store: ObjectStore,
    log: S3Location,
    marker: CommitMarker,
    previous: CommitMarker | None,
    size_of: SizeOf,
    *,
    count_rows: bool = False,
) -> tuple[CheckpointFindings, list[CommitLogRow]]:
    """The invariants of one committed checkpoint, against the one before it."""
    n = marker.checkpoint_id
    found = CheckpointFindings()
    if previous is not None:
        if n != previous.checkpoint_id + 1:
            found.contiguity.append(f"chk-{n}: follows chk-{previous.checkpoint_id}; checkpoint ids must be consecutive")
        ends = previous.end_offsets()
        for skipped in marker.lost:  # knowingly skipped offsets bridge the gap they leave
            if ends.get(skipped.partition) == skipped.start:
                ends[skipped.partition] = skipped.end
        for r in marker.ranges:
            if r.partition in ends and r.start != ends[r.partition]:
                kind = "gap" if r.start > ends[r.partition] else "overlap"
                found.contiguity.append(
                    f"chk-{n}: partition {r.partition} starts at {r.start} but chk-{previous.checkpoint_id} "
                    f"ended at {ends[r.partition]} ({kind})"
                )
    rows = read_checkpoint_rows(store, log, n)
    row_files = {row.s3_key for row in rows}
    if row_files != set(marker.files):
        found.files.append(f"chk-{n}: commit-log CSVs list {sorted(row_files)} but the marker lists {sorted(marker.files)}")
    per_file: dict[str, int] = {}
    per_partition: dict[int, int] = {}
    for row in rows:
        per_file[row.s3_key] = per_file.get(row.s3_key, 0) + row.record_count
        per_partition[row.kafka_partition] = per_partition.get(row.kafka_partition, 0) + row.record_count
    sizes = {row.s3_key: row.file_bytes for row in rows}
    for uri, logged_size in sorted(sizes.items()):
        actual = size_of(uri)
        if actual is None:
            found.files.append(f"chk-{n}: {uri} is listed but does not exist")
        elif actual != logged_size:
            found.files.append(f"chk-{n}: {uri} is {actual} bytes, the log says {logged_size}")
        elif count_rows and (rows_in_file := parquet_row_count(store, uri)) != per_file[uri]:
            held = "is not readable Parquet" if rows_in_file is None else f"holds {rows_in_file} rows"
            found.counts.append(f"chk-{n}: {uri} {held}, the log says {per_file[uri]}")
    for r in marker.ranges:
        if per_partition.get(r.partition, 0) != r.count:
            found.counts.append(
                f"chk-{n}: partition {r.partition} range [{r.start}, {r.end}) has {r.count} offsets but the log counts "
                f"{per_partition.get(r.partition, 0)} records"
            )
    return found, rows


def verify_ledger(
    store: ObjectStore,
    log: S3Location,
    data_locations: list[S3Location],
    *,
    deep: bool = False,
    progress: Callable[[str], None] | None = None,
) -> VerifyReport:
    report = VerifyReport()
    markers, uncommitted = committed_checkpoints(store, log)
    newest = markers[-1].checkpoint_id if markers else 0
    report.in_flight = [i for i in uncommitted if i > newest]
    report.violations += [f"chk-{i}: no commit marker, yet later checkpoints committed" for i in uncommitted if i < newest]
    if markers and markers[0].checkpoint_id != 1:
        report.violations.append(f"the first committed checkpoint is chk-{markers[0].checkpoint_id}, not chk-1")
    existing: dict[str, int] = {}
    for location in data_locations:
        existing.update({location.uri(k): size for k, size in store.list_keys(location.bucket, location.prefix + "/").items()})
    listed: set[str] = set()
    previous: CommitMarker | None = None
    for marker in markers:
        found, rows = check_checkpoint(store, log, marker, previous, existing.get)
        report.violations += found.all()
        report.checkpoints += 1
        report.records += marker.record_count
        report.dropped += marker.dropped_count
        listed |= {row.s3_key for row in rows}
        report.files = len(listed)
        previous = marker
        if progress and report.checkpoints % 100 == 0:
            progress(f"checked {report.checkpoints} checkpoints")
    in_flight_names = tuple(f"part-{i:08d}-" for i in report.in_flight)
    for uri in sorted(set(existing) - listed):
        if not uri.rsplit("/", 1)[-1].startswith(in_flight_names):
            report.violations.append(f"{uri} is in the lake but in no committed checkpoint")
    if deep:
        _verify_records(store, markers, report, progress)
    return report


def _read_committed_records(
    store: ObjectStore, markers: list[CommitMarker], report: VerifyReport, progress: Callable[[str], None] | None
) -> list[pl.DataFrame]:
    """The coordinates columns of every committed file, fetched and decoded MAX_CONCURRENT_REQUESTS at a time."""

    def read(job: tuple[int, str]) -> pl.DataFrame | None:
        checkpoint_id, uri = job
        raw = store.get(*split_uri(uri))
        if raw is None:
            return None  # already reported as missing
        frame = pl.read_parquet(io.BytesIO(raw), columns=["kafka_partition", "kafka_offset", "checkpoint_id"])
        return frame.with_columns(pl.lit(checkpoint_id, pl.Int64).alias("committed_in"))

    jobs = [(marker.checkpoint_id, uri) for marker in markers for uri in marker.files]
    frames = []
    with ThreadPoolExecutor(max_workers=MAX_CONCURRENT_REQUESTS) as pool:
        for done, frame in enumerate(pool.map(read, jobs), start=1):
            if frame is not None:
                frames.append(frame)
                report.rows_read += frame.height
            if progress and (done % 50 == 0 or done == len(jobs)):
                progress(f"read {done}/{len(jobs)} files: {report.rows_read} rows")
    return frames


def _merged(ranges: list[PartitionRange]) -> list[tuple[int, int]]:
    """Touching ranges joined: contiguous checkpoints of a partition become one interval to test."""
    merged: list[tuple[int, int]] = []
    for r in sorted(ranges, key=lambda r: r.start):
        if merged and merged[-1][1] == r.start:
            merged[-1] = (merged[-1][0], r.end)
        else:
            merged.append((r.start, r.end))
    return merged


def _verify_records(
    store: ObjectStore, markers: list[CommitMarker], report: VerifyReport, progress: Callable[[str], None] | None
) -> None:
    """Every (partition, offset) of every committed range is in exactly one file, data or dropped."""
    frames = _read_committed_records(store, markers, report, progress)
    if not frames:
        return
    records = pl.concat(frames)
    wrong_checkpoint = records.filter(pl.col("checkpoint_id") != pl.col("committed_in")).height
    if wrong_checkpoint:
        report.violations.append(f"{wrong_checkpoint} rows carry a checkpoint_id other than the checkpoint that committed them")
    present = set(records["kafka_partition"].unique().to_list())
    for partition in sorted({r.partition for m in markers for r in m.ranges if r.count} - present):
        report.violations.append(f"partition {partition}: committed ranges hold records but no file has any")
    for partition_frame in records.partition_by("kafka_partition"):
        partition = int(partition_frame["kafka_partition"][0])
        ranges = [r for m in markers for r in m.ranges if r.partition == partition and r.count]
        expected = sum(r.count for r in ranges)
        offsets = partition_frame["kafka_offset"]
        inside = sum(offsets.is_between(start, end, closed="left").sum() for start, end in _merged(ranges))
        distinct = offsets.n_unique()
        # As many rows as offsets, all distinct, all inside the (disjoint) ranges: each exactly once.
        if partition_frame.height == expected == distinct == inside:
            continue
        report.violations.append(
            f"partition {partition}: committed ranges hold {expected} offsets, the files hold {partition_frame.height} "
            f"rows, {distinct} distinct offsets, {inside} rows inside the ranges"
        )
        if distinct < partition_frame.height:
            duplicates = partition_frame.group_by("kafka_offset").len().filter(pl.col("len") > 1).sort("kafka_offset")
            sample = duplicates.head(5)["kafka_offset"].to_list()
            report.violations.append(f"partition {partition}: {duplicates.height} offsets appear more than once, e.g. {sample}")
