"""The lake: where data, dead letters and the commit log go, and the S3 that holds them."""

from __future__ import annotations

from functools import cache
from typing import Any

from dagster import ConfigurableResource
from dagster_aws.s3 import S3Resource
from pydantic import Field, field_validator, model_validator

from lineage_dagster.clients.s3 import S3ObjectStore, make_s3_client
from lineage_dagster.ledger.paths import S3Location
from lineage_dagster.resources.secrets import resolved


@cache
def _client_for(endpoint_url: str | None, region: str | None, access_key_id: str | None, secret: str | None) -> Any:
    return make_s3_client(endpoint_url=endpoint_url, region=region, access_key_id=access_key_id, secret_access_key=secret)


class LakeResource(ConfigurableResource):
    """S3 locations of the output contract (`s3://bucket/prefix`) and the S3 endpoint and credentials."""

    s3: S3Resource = Field(default_factory=S3Resource, description="endpoint, region and credentials (EnvVar)")
    output_path: str = Field(default="s3://flink-data/output", description="Parquet data files")
    commit_log_path: str = Field(default="s3://flink-data/write-ahead-commit-log", description="the write-ahead commit log")
    dropped_path: str | None = Field(default=None, description="dead-letter files; default s3://<output bucket>/dropped")

    @field_validator("output_path", "commit_log_path", "dropped_path")
    @classmethod
    def _s3_location(cls, value: str | None) -> str | None:
        return None if value is None else str(S3Location.parse(value))

    @model_validator(mode="after")
    def _apart(self) -> LakeResource:
        if self.output.contains(self.commit_log) or self.commit_log.contains(self.output):
            raise ValueError("OUTPUT_PATH and WRITE_AHEAD_COMMIT_LOG_PATH must not contain one another")
        return self

    @property
    def output(self) -> S3Location:
        return S3Location.parse(self.output_path)

    @property
    def commit_log(self) -> S3Location:
        return S3Location.parse(self.commit_log_path)

    @property
    def dropped(self) -> S3Location:
        return S3Location.parse(self.dropped_path or f"s3://{self.output.bucket}/dropped")

    def store(self) -> S3ObjectStore:
        """The lake's S3. One client per configuration per process: creating one is costly, every
        step needs one, and boto3 clients are thread-safe."""
        s3 = self.s3
        return S3ObjectStore(
            _client_for(s3.endpoint_url, s3.region_name, resolved(s3.aws_access_key_id), resolved(s3.aws_secret_access_key))
        )

    def check_buckets(self, store: S3ObjectStore) -> None:
        for bucket in sorted({self.output.bucket, self.commit_log.bucket, self.dropped.bucket}):
            store.check_bucket(bucket)
