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
from lineage_dagster.settings import SettingsError, load_settings


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
    settings = load_settings({})
    assert settings.kafka_bootstrap_servers == "kafka:9092"
    assert settings.kafka_topic == "lineage-input"
    assert str(settings.output) == "s3://flink-data/output"
    assert str(settings.commit_log) == "s3://flink-data/write-ahead-commit-log"
    assert str(settings.dropped) == "s3://flink-data/dropped"
    assert settings.parallelism == 2
    assert settings.execution.executor == "in_process"


def test_celery_results_go_through_the_broker_unless_a_backend_is_named():
    broker = {"CHECKPOINT_EXECUTOR": "celery", "CELERY_BROKER_URL": "redis://redis:6379/0"}
    execution = load_settings(broker).execution
    assert (execution.executor, execution.celery_broker_url, execution.celery_backend_url) == (
        "celery",
        "redis://redis:6379/0",
        None,
    )
    named = load_settings({**broker, "CELERY_BACKEND_URL": "redis://redis:6379/1"}).execution
    assert named.celery_results_url == "redis://redis:6379/1"
    assert execution.celery_visibility_timeout_s == 600


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"PARALLELISM": "0"}, "PARALLELISM"),
        ({"PARALLELISM": "two"}, "PARALLELISM"),
        ({"OUTPUT_PATH": "output"}, "OUTPUT_PATH"),
        ({"WRITE_AHEAD_COMMIT_LOG_PATH": "s3://x"}, "WRITE_AHEAD_COMMIT_LOG_PATH"),
        ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL"),
        ({"MAX_RECORDS_PER_CHECKPOINT": "-5"}, "MAX_RECORDS_PER_CHECKPOINT"),
        ({"CHECKPOINT_EXECUTOR": "local"}, "CHECKPOINT_EXECUTOR='local' must be one of in_process, multiprocess, celery, k8s"),
        ({"CHECKPOINT_EXECUTOR": "celery"}, "CHECKPOINT_EXECUTOR=celery needs CELERY_BROKER_URL"),
        ({"CELERY_VISIBILITY_TIMEOUT_S": "1"}, "CELERY_VISIBILITY_TIMEOUT_S=1 must be between 5 and 86400"),
        ({"OUTPUT_PATH": "s3://bk1/lake", "WRITE_AHEAD_COMMIT_LOG_PATH": "s3://bk1/lake/log"}, "WRITE_AHEAD_COMMIT_LOG_PATH"),
    ],
)
def test_invalid_settings_name_the_variable(env, named):
    with pytest.raises(SettingsError, match=named):
        load_settings(env)


def test_secrets_stay_out_of_repr():
    settings = load_settings(
        {
            "AWS_SECRET_ACCESS_KEY": "s3cr3t-value",
            "KAFKA_SASL_PASSWORD": "pw-value",
            "CHECKPOINT_EXECUTOR": "celery",
            "CELERY_BROKER_URL": "redis://:broker-pw@redis:6379/0",
        }
    )
    assert "broker-pw" not in repr(settings)
    assert "s3cr3t-value" not in repr(settings)
    assert "pw-value" not in repr(settings)
    assert settings.kafka_security.client_config()["sasl.password"] == "pw-value"
