from datetime import UTC, datetime

import pytest

from lineage_dagster.ledger.paths import (
    S3Location,
    checkpoint_id_of_prefix,
    data_file_key,
    hour_folder,
    marker_key,
    plan_key,
    subtask_log_key,
)
from lineage_dagster.settings import SettingsError, load_resources


def test_hour_folder_uses_utc_and_seed_layout():
    assert hour_folder(datetime(2026, 2, 4, 9, 59, tzinfo=UTC)) == "year=2026/month=02/day=04/hour=09"


def test_keys_are_deterministic():
    output = S3Location.parse("s3://flink-data/output/")
    key = data_file_key(output, datetime(2026, 2, 24, 20, tzinfo=UTC), 42, 1)
    assert key == "output/year=2026/month=02/day=24/hour=20/part-00000042-1.parquet"
    log = S3Location.parse("s3://flink-data/write-ahead-commit-log")
    assert subtask_log_key(log, 5, 1) == "write-ahead-commit-log/chk-5/subtask-1.csv"
    assert plan_key(log, 5) == "write-ahead-commit-log/chk-5/_plan.json"
    assert marker_key(log, 5) == "write-ahead-commit-log/chk-5/_committed.json"
    assert checkpoint_id_of_prefix("write-ahead-commit-log/chk-17/") == 17
    assert checkpoint_id_of_prefix("write-ahead-commit-log/other/") is None


def test_location_parsing_rejects_non_s3_and_bad_buckets():
    with pytest.raises(ValueError, match="s3://"):
        S3Location.parse("/tmp/out")
    with pytest.raises(ValueError, match="bucket"):
        S3Location.parse("s3://Bad_Bucket/x")
    assert S3Location.parse("s3://bk1/a/b").uri("a/b/c") == "s3://bk1/a/b/c"


def test_defaults_are_the_seeds():
    resources = load_resources({})
    assert resources.kafka.bootstrap_servers == "kafka:9092"
    assert resources.kafka.topic == "lineage-input"
    assert str(resources.lake.output) == "s3://flink-data/output"
    assert str(resources.lake.commit_log) == "s3://flink-data/write-ahead-commit-log"
    assert str(resources.lake.dropped) == "s3://flink-data/dropped"
    assert resources.execution.parallelism == 2
    assert resources.execution.executor == "in_process"
    assert resources.limits.max_records_per_checkpoint == 1_000_000


def test_celery_results_go_through_the_broker_unless_a_backend_is_named(monkeypatch):
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://redis:6379/0")
    broker = {"CHECKPOINT_EXECUTOR": "celery", "CELERY_BROKER_URL": "redis://redis:6379/0"}
    execution = load_resources(broker).execution
    assert (execution.executor, execution.celery_results_env, execution.celery_results_url) == (
        "celery",
        "CELERY_BROKER_URL",
        "redis://redis:6379/0",
    )
    monkeypatch.setenv("CELERY_BACKEND_URL", "redis://redis:6379/1")
    named = load_resources({**broker, "CELERY_BACKEND_URL": "redis://redis:6379/1"}).execution
    assert (named.celery_results_env, named.celery_results_url) == ("CELERY_BACKEND_URL", "redis://redis:6379/1")
    assert execution.celery_visibility_timeout_s == 600


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"PARALLELISM": "0"}, "PARALLELISM='0': Input should be greater than or equal to 1"),
        ({"PARALLELISM": "two"}, "PARALLELISM='two'"),
        ({"OUTPUT_PATH": "output"}, "OUTPUT_PATH='output': expected s3://bucket/prefix"),
        ({"WRITE_AHEAD_COMMIT_LOG_PATH": "s3://x"}, "WRITE_AHEAD_COMMIT_LOG_PATH='s3://x'"),
        ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL='TLS'"),
        ({"MAX_RECORDS_PER_CHECKPOINT": "-5"}, "MAX_RECORDS_PER_CHECKPOINT='-5'"),
        ({"ALLOW_OFFSET_LOSS": "maybe"}, "ALLOW_OFFSET_LOSS='maybe'"),
        (
            {"CHECKPOINT_EXECUTOR": "local"},
            "CHECKPOINT_EXECUTOR='local': Input should be 'in_process', 'multiprocess', 'celery' or 'k8s'",
        ),
        ({"CHECKPOINT_EXECUTOR": "celery"}, "CHECKPOINT_EXECUTOR=celery needs CELERY_BROKER_URL"),
        ({"CELERY_VISIBILITY_TIMEOUT_S": "1"}, "CELERY_VISIBILITY_TIMEOUT_S='1': Input should be greater than or equal to 5"),
        ({"OUTPUT_PATH": "s3://bk1/lake", "WRITE_AHEAD_COMMIT_LOG_PATH": "s3://bk1/lake/log"}, "WRITE_AHEAD_COMMIT_LOG_PATH"),
    ],
)
def test_invalid_settings_name_the_variable(env, named):
    with pytest.raises(SettingsError) as raised:
        load_resources(env)
    assert named in str(raised.value)


def test_secrets_reach_dagster_only_as_environment_references(monkeypatch):
    secrets = {
        "AWS_SECRET_ACCESS_KEY": "s3cr3t-value",
        "KAFKA_SASL_PASSWORD": "pw-value",
        "CHECKPOINT_EXECUTOR": "celery",
        "CELERY_BROKER_URL": "redis://:broker-pw@redis:6379/0",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    resources = load_resources(secrets)
    for secret in ("broker-pw", "s3cr3t-value", "pw-value"):
        assert secret not in repr(resources)
    assert resources.kafka.client_config()["sasl.password"] == "pw-value"
