from functools import cache
from typing import Any

from dagster import ConfigurableResource
from dagster_aws.s3 import S3Resource

from lineage_dagster.clients.s3 import S3ObjectStore
from lineage_dagster.ledger.paths import S3Location


@cache
def _client_for(config: tuple) -> Any:
    return S3Resource(**dict(config)).get_client()


def _client(s3: S3Resource) -> Any:
    """One boto3 client per S3 configuration per process: creating one costs ~0.1 CPU-s, and every
    step of a checkpoint needs one. boto3 clients are thread-safe."""
    return _client_for(tuple(sorted((k, v) for k, v in s3.model_dump().items() if v is not None)))


class LakeResource(ConfigurableResource):
    """Where data, dead letters and the commit log go, and how big a checkpoint may get."""

    s3: S3Resource
    output_path: str
    commit_log_path: str
    dropped_path: str
    max_records_per_checkpoint: int = 1_000_000
    max_record_bytes: int = 1_048_576
    subtask_buffer_bytes: int = 67_108_864
    allow_offset_loss: bool = False

    @property
    def output(self) -> S3Location:
        return S3Location.parse(self.output_path)

    @property
    def commit_log(self) -> S3Location:
        return S3Location.parse(self.commit_log_path)

    @property
    def dropped(self) -> S3Location:
        return S3Location.parse(self.dropped_path)

    def store(self) -> S3ObjectStore:
        return S3ObjectStore(_client(self.s3))

    def check_buckets(self, store: S3ObjectStore) -> None:
        for bucket in sorted({self.output.bucket, self.commit_log.bucket, self.dropped.bucket}):
            store.check_bucket(bucket)
