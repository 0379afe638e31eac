"""Every environment variable the product reads, parsed and validated in one place.

Names and defaults follow the Flink seed (`KAFKA_BOOTSTRAP_SERVERS`, `KAFKA_TOPIC`, `OUTPUT_PATH`,
`WRITE_AHEAD_COMMIT_LOG_PATH`); S3 uses the standard `AWS_*` variables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

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
    subtask_workers: int
    subtask_worker_socket: Path | None
    allow_offset_loss: bool


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


# A Unix socket's path: sun_path holds 108 bytes with the terminating NUL.
UNIX_SOCKET_PATH_BYTES = 107


def socket_path(raw: str, name: str) -> Path:
    """`raw` as the path of a Unix socket, or a SettingsError naming `name` (a variable or option)."""
    path = Path(raw)
    if not path.is_absolute():
        raise SettingsError(f"{name}={raw!r} must be an absolute path (runs may start in another directory)")
    if len(os.fsencode(raw)) > UNIX_SOCKET_PATH_BYTES:
        raise SettingsError(f"{name}={raw!r} is longer than a Unix socket path may be ({UNIX_SOCKET_PATH_BYTES} bytes)")
    return path


@dataclass(frozen=True)
class FaultInjection:
    """`LINEAGE_FAULT=<point>:<kill|sleep=SECONDS>[:<once-file>]`, for the crash tests and the soak.

    With a once-file the fault fires only if that file does not exist yet (and creates it), so a
    retried run gets past the point.
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
    raw_socket = env.get("SUBTASK_WORKER_SOCKET", "").strip()
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
        subtask_workers=_whole_number(env, "SUBTASK_WORKERS", os.cpu_count() or 1, 256, minimum=0),
        subtask_worker_socket=socket_path(raw_socket, "SUBTASK_WORKER_SOCKET") if raw_socket else None,
        allow_offset_loss=_flag(env, "ALLOW_OFFSET_LOSS"),
    )
