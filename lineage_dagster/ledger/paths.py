"""Where things live in S3: locations, the hour layout and deterministic object keys."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class S3Location:
    """An `s3://bucket/prefix` location; `prefix` has no leading or trailing slash."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, uri: str) -> S3Location:
        if not uri.startswith("s3://"):
            raise ValueError("expected s3://bucket/prefix")
        bucket, _, prefix = uri[len("s3://") :].partition("/")
        if not _BUCKET.match(bucket):
            raise ValueError(f"{bucket!r} is not a valid S3 bucket name")
        return cls(bucket=bucket, prefix=prefix.strip("/"))

    def key(self, *parts: str) -> str:
        return "/".join(part for part in (self.prefix, *parts) if part)

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def contains(self, other: S3Location) -> bool:
        if self.bucket != other.bucket:
            return False
        return not self.prefix or other.prefix == self.prefix or other.prefix.startswith(self.prefix + "/")

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"


def split_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/key` -> (bucket, key)."""
    location = S3Location.parse(uri)
    return location.bucket, location.prefix


def hour_start(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


HOUR_KEY_FORMAT = "%Y-%m-%d-%H:00"


def hour_key(hour: datetime) -> str:
    """The hour as a Dagster partition key, `2026-12-07-03:00` (UTC)."""
    return f"{hour_start(hour):{HOUR_KEY_FORMAT}}"


def parse_hour_key(key: str) -> datetime:
    """`2026-12-07-03:00` -> that hour in UTC; ValueError for anything else."""
    hour = datetime.strptime(key, HOUR_KEY_FORMAT).replace(tzinfo=UTC)
    if hour_key(hour) != key:
        raise ValueError(f"{key!r} is not an hour key like 2026-12-07-03:00")
    return hour


def hour_folder(hour: datetime) -> str:
    """The seed's `DateTimeBucketAssigner` layout, in UTC."""
    hour = hour.astimezone(UTC)
    return f"year={hour:%Y}/month={hour:%m}/day={hour:%d}/hour={hour:%H}"


def data_file_key(output: S3Location, hour: datetime, checkpoint_id: int, subtask: int) -> str:
    """Deterministic per (checkpoint, subtask, hour): a retry overwrites with the same bytes."""
    return output.key(hour_folder(hour), f"part-{checkpoint_id:08d}-{subtask}.parquet")


def split_file_key(output: S3Location, hour: datetime, checkpoint_id: int, subtask: int, partition: int, start: int) -> str:
    """A file of one partition's records split off a subtask's buffer, from offset `start`; as
    deterministic as `data_file_key`, since the plan fixes where splits fall."""
    return output.key(hour_folder(hour), f"part-{checkpoint_id:08d}-{subtask}-p{partition}-{start}.parquet")


def checkpoint_prefix(commit_log: S3Location, checkpoint_id: int) -> str:
    return commit_log.key(f"chk-{checkpoint_id}")


def plan_key(commit_log: S3Location, checkpoint_id: int) -> str:
    return f"{checkpoint_prefix(commit_log, checkpoint_id)}/_plan.json"


def marker_key(commit_log: S3Location, checkpoint_id: int) -> str:
    return f"{checkpoint_prefix(commit_log, checkpoint_id)}/_committed.json"


def subtask_log_key(commit_log: S3Location, checkpoint_id: int, subtask: int) -> str:
    return f"{checkpoint_prefix(commit_log, checkpoint_id)}/subtask-{subtask}.csv"


_CHECKPOINT_DIR = re.compile(r"chk-(\d+)/?$")


def checkpoint_id_of_prefix(prefix: str) -> int | None:
    """`.../chk-17/` -> 17; anything else -> None."""
    match = _CHECKPOINT_DIR.search(prefix)
    return int(match.group(1)) if match else None
