from dagster import ConfigurableResource
from dagster_aws.s3 import S3Resource

from lineage_dagster.clients.s3 import S3ObjectStore
from lineage_dagster.ledger.paths import S3Location


class LakeResource(ConfigurableResource):
    """Where data, dead letters and the commit log go, and how big a checkpoint may get."""

    s3: S3Resource
    output_path: str
    commit_log_path: str
    dropped_path: str
    max_records_per_checkpoint: int = 1_000_000
    max_record_bytes: int = 1_048_576

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
        return S3ObjectStore(self.s3.get_client())

    def check_buckets(self, store: S3ObjectStore) -> None:
        for bucket in sorted({self.output.bucket, self.commit_log.bucket, self.dropped.bucket}):
            store.check_bucket(bucket)
