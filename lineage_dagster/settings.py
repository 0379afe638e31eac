"""Every environment variable the product reads, parsed and validated in one place.

Names and defaults follow the Flink seed (`KAFKA_BOOTSTRAP_SERVERS`, `KAFKA_TOPIC`, `OUTPUT_PATH`,
`WRITE_AHEAD_COMMIT_LOG_PATH`); S3 uses the standard `AWS_*` variables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from lineage_dagster.ledger.paths import S3Location


class SettingsError(ValueError):
    """A setting has a value the product cannot use; the message names the variable to fix."""


@dataclass(frozen=True)
class KafkaSecurity:
    """Client security settings, passed straight to librdkafka. Secrets never leave this object."""

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_ca_location: str | None = None

    def client_config(self) -> dict[str, str]:
        config = {"security.protocol": self.protocol}
        optional = {
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.sasl_username,
            "sasl.password": self.sasl_password,
            "ssl.ca.location": self.ssl_ca_location,
        }
        config.update({key: value for key, value in optional.items() if value})
        return config


@dataclass(frozen=True)
class S3Settings:
    endpoint_url: str | None
    access_key_id: str | None = field(repr=False)
    secret_access_key: str | None = field(repr=False)
    region: str


EXECUTORS = ("in_process", "multiprocess", "celery", "k8s")


@dataclass(frozen=True)
class ExecutionSettings:
    """Which Dagster executor runs a checkpoint's steps, and the Celery broker when it is Celery."""

    executor: str = "in_process"
    celery_broker_url: str | None = field(default=None, repr=False)  # may carry a password
    celery_backend_url: str | None = field(default=None, repr=False)  # None: results go through the broker
    celery_visibility_timeout_s: int = 600

    @property
    def celery_results_url(self) -> str | None:
        return self.celery_backend_url or self.celery_broker_url


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap_servers: str
    kafka_topic: str
    kafka_security: KafkaSecurity
    output: S3Location
    commit_log: S3Location
    dropped: S3Location
    s3: S3Settings
    parallelism: int
    max_records_per_checkpoint: int
    max_record_bytes: int
    subtask_buffer_bytes: int
    allow_offset_loss: bool
    execution: ExecutionSettings


_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")


def _whole_number(env: Mapping[str, str], name: str, default: int, maximum: int, minimum: int = 1) -> int:
    raw = env.get(name, "").strip() or str(default)
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number") from None
    if not minimum <= value <= maximum:
        raise SettingsError(f"{name}={value} must be between {minimum} and {maximum}")
    return value


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower() or "false"
    if raw not in {"true", "false"}:
        raise SettingsError(f"{name}={raw!r} must be true or false")
    return raw == "true"


def _location(env: Mapping[str, str], name: str, default: str) -> S3Location:
    raw = env.get(name, "").strip() or default
    try:
        return S3Location.parse(raw)
    except ValueError as error:
        raise SettingsError(f"{name}={raw!r}: {error}") from None


def _execution(env: Mapping[str, str]) -> ExecutionSettings:
    executor = env.get("CHECKPOINT_EXECUTOR", "").strip().lower() or "in_process"
    if executor not in EXECUTORS:
        raise SettingsError(f"CHECKPOINT_EXECUTOR={executor!r} must be one of {', '.join(EXECUTORS)}")
    broker = env.get("CELERY_BROKER_URL", "").strip() or None
    backend = env.get("CELERY_BACKEND_URL", "").strip() or None
    if executor == "celery" and broker is None:
        raise SettingsError("CHECKPOINT_EXECUTOR=celery needs CELERY_BROKER_URL (e.g. redis://127.0.0.1:6379/0)")
    return ExecutionSettings(executor, broker, backend, _whole_number(env, "CELERY_VISIBILITY_TIMEOUT_S", 600, 86_400, minimum=5))


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


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every setting; raises SettingsError naming the variable at fault."""
    env = os.environ if env is None else env
    bootstrap = env.get("KAFKA_BOOTSTRAP_SERVERS", "").strip() or "kafka:9092"
    topic = env.get("KAFKA_TOPIC", "").strip() or "lineage-input"
    protocol = (env.get("KAFKA_SECURITY_PROTOCOL", "").strip() or "PLAINTEXT").upper()
    if protocol not in _PROTOCOLS:
        raise SettingsError(f"KAFKA_SECURITY_PROTOCOL={protocol!r} must be one of {', '.join(_PROTOCOLS)}")
    security = KafkaSecurity(
        protocol=protocol,
        sasl_mechanism=env.get("KAFKA_SASL_MECHANISM") or None,
        sasl_username=env.get("KAFKA_SASL_USERNAME") or None,
        sasl_password=env.get("KAFKA_SASL_PASSWORD") or None,
        ssl_ca_location=env.get("KAFKA_SSL_CA_LOCATION") or None,
    )
    output = _location(env, "OUTPUT_PATH", "s3://flink-data/output")
    commit_log = _location(env, "WRITE_AHEAD_COMMIT_LOG_PATH", "s3://flink-data/write-ahead-commit-log")
    dropped = _location(env, "DROPPED_PATH", f"s3://{output.bucket}/dropped")
    if output.contains(commit_log) or commit_log.contains(output):
        raise SettingsError("OUTPUT_PATH and WRITE_AHEAD_COMMIT_LOG_PATH must not contain one another")
    return Settings(
        kafka_bootstrap_servers=bootstrap,
        kafka_topic=topic,
        kafka_security=security,
        output=output,
        commit_log=commit_log,
        dropped=dropped,
        s3=S3Settings(
            endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
            access_key_id=env.get("AWS_ACCESS_KEY_ID") or None,
            secret_access_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
        ),
        parallelism=_whole_number(env, "PARALLELISM", 2, 256),
        max_records_per_checkpoint=_whole_number(env, "MAX_RECORDS_PER_CHECKPOINT", 1_000_000, 100_000_000),
        max_record_bytes=_whole_number(env, "MAX_RECORD_BYTES", 1_048_576, 1_073_741_824),
        subtask_buffer_bytes=_whole_number(env, "SUBTASK_BUFFER_BYTES", 67_108_864, 68_719_476_736),
        allow_offset_loss=_flag(env, "ALLOW_OFFSET_LOSS"),
        execution=_execution(env),
    )
