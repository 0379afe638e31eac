"""Dagster resources: small configurable wrappers that hand out the real clients."""

from dagster import EnvVar
from dagster_aws.s3 import S3Resource

from lineage_dagster.resources.kafka import KafkaResource
from lineage_dagster.resources.lake import LakeResource
from lineage_dagster.resources.step_outputs import step_output_files
from lineage_dagster.settings import Settings

__all__ = ["KafkaResource", "LakeResource", "build_resources", "step_output_files"]


def _secret(name: str, value: str | None) -> str | EnvVar | None:
    """Secrets are passed as EnvVar so Dagster never stores or shows their values."""
    return EnvVar(name) if value else None


def build_resources(settings: Settings) -> dict[str, object]:
    security = settings.kafka_security
    s3 = S3Resource(
        endpoint_url=settings.s3.endpoint_url,
        region_name=settings.s3.region,
        aws_access_key_id=_secret("AWS_ACCESS_KEY_ID", settings.s3.access_key_id),
        aws_secret_access_key=_secret("AWS_SECRET_ACCESS_KEY", settings.s3.secret_access_key),
        max_attempts=5,
    )
    return {
        "kafka": KafkaResource(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            topic=settings.kafka_topic,
            security_protocol=security.protocol,
            sasl_mechanism=security.sasl_mechanism,
            sasl_username=security.sasl_username,
            sasl_password=_secret("KAFKA_SASL_PASSWORD", security.sasl_password),
            ssl_ca_location=security.ssl_ca_location,
        ),
        "lake": LakeResource(
            s3=s3,
            output_path=str(settings.output),
            commit_log_path=str(settings.commit_log),
            dropped_path=str(settings.dropped),
            max_records_per_checkpoint=settings.max_records_per_checkpoint,
            max_record_bytes=settings.max_record_bytes,
            subtask_buffer_bytes=settings.subtask_buffer_bytes,
            allow_offset_loss=settings.allow_offset_loss,
        ),
    }
