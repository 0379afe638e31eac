"""Every environment variable the product reads, and the resources they fill.

Each setting is a field of one resource (its default, description and validation are there); this
module only says which variable fills which field. Names follow the Flink seed
(`KAFKA_BOOTSTRAP_SERVERS`, `KAFKA_TOPIC`, `OUTPUT_PATH`, `WRITE_AHEAD_COMMIT_LOG_PATH`); S3 uses the
standard `AWS_*` variables. Secrets become `EnvVar`s, so Dagster never stores or shows their values;
they are read from the process environment (where Dagster reads them) whatever `env` is given.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from dagster import ConfigurableResource, EnvVar
from dagster_aws.s3 import S3Resource
from pydantic import ValidationError

from lineage_dagster.resources.execution import ExecutionResource
from lineage_dagster.resources.kafka import KafkaResource
from lineage_dagster.resources.lake import LakeResource
from lineage_dagster.resources.limits import CheckpointLimits


class SettingsError(ValueError):
    """A setting has a value the product cannot use; the message names the variable to fix."""


# Variable -> field, per resource.
KAFKA = {
    "KAFKA_BOOTSTRAP_SERVERS": "bootstrap_servers",
    "KAFKA_TOPIC": "topic",
    "KAFKA_SECURITY_PROTOCOL": "security_protocol",
    "KAFKA_SASL_MECHANISM": "sasl_mechanism",
    "KAFKA_SASL_USERNAME": "sasl_username",
    "KAFKA_SASL_PASSWORD": "sasl_password",
    "KAFKA_SSL_CA_LOCATION": "ssl_ca_location",
}
LAKE = {"OUTPUT_PATH": "output_path", "WRITE_AHEAD_COMMIT_LOG_PATH": "commit_log_path", "DROPPED_PATH": "dropped_path"}
S3 = {
    "AWS_ENDPOINT_URL": "endpoint_url",
    "AWS_DEFAULT_REGION": "region_name",
    "AWS_REGION": "region_name",  # wins over AWS_DEFAULT_REGION, as in boto3
    "AWS_ACCESS_KEY_ID": "aws_access_key_id",
    "AWS_SECRET_ACCESS_KEY": "aws_secret_access_key",
}
LIMITS = {
    "MAX_RECORDS_PER_CHECKPOINT": "max_records_per_checkpoint",
    "MAX_RECORD_BYTES": "max_record_bytes",
    "SUBTASK_BUFFER_BYTES": "subtask_buffer_bytes",
    "ALLOW_OFFSET_LOSS": "allow_offset_loss",
}
EXECUTION = {
    "CHECKPOINT_EXECUTOR": "executor",
    "PARALLELISM": "parallelism",
    "CELERY_BROKER_URL": "celery_broker_url",
    "CELERY_BACKEND_URL": "celery_backend_url",
    "CELERY_VISIBILITY_TIMEOUT_S": "celery_visibility_timeout_s",
}
SECRETS = {"KAFKA_SASL_PASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "CELERY_BROKER_URL", "CELERY_BACKEND_URL"}


def _build(resource: type[ConfigurableResource], variables: Mapping[str, str], env: Mapping[str, str], **extra: object):  # noqa: ANN202
    """`resource` from the variables that are set (the rest keep the field's default); a bad value
    fails naming its variable."""
    values: dict[str, object] = {}
    raw: dict[str, str] = {}
    for name, field in variables.items():
        value = env.get(name, "").strip()
        if value:
            values[field] = EnvVar(name) if name in SECRETS else value
            raw[field] = name
    try:
        return resource(**{**extra, **values})
    except ValidationError as error:
        problems = []
        for problem in error.errors():
            field = str(problem["loc"][0]) if problem["loc"] else None
            message = str(problem["msg"]).removeprefix("Value error, ")
            if field in raw:
                shown = "<secret>" if raw[field] in SECRETS else repr(env[raw[field]].strip())
                message = f"{raw[field]}={shown}: {message}"
            problems.append(message)
        raise SettingsError("; ".join(problems)) from None


@dataclass(frozen=True)
class PipelineResources:
    """The pipeline's resources as the environment configures them."""

    kafka: KafkaResource
    lake: LakeResource
    limits: CheckpointLimits
    execution: ExecutionResource

    def dagster_resources(self) -> dict[str, ConfigurableResource]:
        """What the assets, the schedule and the sensors take, by resource key."""
        return {"kafka": self.kafka, "lake": self.lake, "limits": self.limits}


def load_resources(env: Mapping[str, str] | None = None) -> PipelineResources:
    """Read and validate every setting; raises SettingsError naming the variable at fault."""
    env = os.environ if env is None else env
    return PipelineResources(
        kafka=_build(KafkaResource, KAFKA, env),
        lake=_build(LakeResource, LAKE, env, s3=_build(S3Resource, S3, env, max_attempts=5)),
        limits=_build(CheckpointLimits, LIMITS, env),
        execution=_build(ExecutionResource, EXECUTION, env),
    )


@dataclass(frozen=True)
class FaultInjection:
    """`LINEAGE_FAULT=<point>:<kill|sleep=SECONDS>[:<once-file>]`, for the crash tests and the soak.

    With a once-file the fault fires only if that file does not exist yet (and creates it, holding
    the process id), so a retried run gets past the point.
    """

    point: str
    action: str
    seconds: float = 0.0
    once_file: str | None = None


def fault_injection(env: Mapping[str, str] | None = None) -> FaultInjection | None:
    raw = (os.environ if env is None else env).get("LINEAGE_FAULT", "").strip()
    if not raw:
        return None
    point, _, rest = raw.partition(":")
    action, _, once_file = rest.partition(":")
    if action == "kill":
        return FaultInjection(point, "kill", once_file=once_file or None)
    if action.startswith("sleep="):
        return FaultInjection(point, "sleep", float(action[len("sleep=") :]), once_file or None)
    raise SettingsError(f"LINEAGE_FAULT={raw!r} must be <point>:kill or <point>:sleep=SECONDS, optionally :<once-file>")
