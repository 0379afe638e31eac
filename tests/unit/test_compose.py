"""docker-compose.yml cannot run here (no Docker engine); check that it stays consistent."""

from pathlib import Path

import yaml
from dagster import EnvVar

from lineage_dagster.settings import load_resources

ROOT = Path(__file__).parents[2]


def test_compose_has_every_service_and_valid_pipeline_settings():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    expected = {"kafka", "kafka-init", "minio", "minio-init", "postgres", "code", "webserver", "daemon", "generator"}
    assert expected | {"redis", "celery-worker"} == set(services)
    env = {k: str(v) for k, v in services["code"]["environment"].items() if "${" not in str(v)}
    resources = load_resources(env)
    assert resources.kafka.bootstrap_servers == "kafka:9092"
    assert str(resources.lake.commit_log) == "s3://flink-data/write-ahead-commit-log"
    assert services["webserver"]["ports"] == ["127.0.0.1:3000:3000"]
    for name in ("code", "celery-worker", "webserver", "daemon"):
        assert services[name]["environment"] == services["code"]["environment"]
    # The Celery workers and their broker are a profile: CHECKPOINT_EXECUTOR=celery uses them.
    assert services["redis"]["profiles"] == services["celery-worker"]["profiles"] == ["celery"]
    assert services["celery-worker"]["command"][:5] == ["dagster-celery", "worker", "start", "-A", "lineage_dagster.celery_app"]
    assert env["CELERY_BROKER_URL"] == "redis://redis:6379/0"
    assert load_resources({**env, "CHECKPOINT_EXECUTOR": "celery"}).execution.celery_broker_url == EnvVar("CELERY_BROKER_URL")
    assert "deploy/workspace-compose.yaml" in (ROOT / "Dockerfile").read_text()
    assert "lineage_dagster/deploy/dagster-postgres.yaml" in (ROOT / "Dockerfile").read_text()
    instance = yaml.safe_load((ROOT / "lineage_dagster/deploy/dagster-postgres.yaml").read_text())
    assert instance["storage"]["postgres"]["postgres_url"] == {"env": "DAGSTER_POSTGRES_URL"}
    assert services["code"]["environment"]["DAGSTER_POSTGRES_URL"].startswith("postgresql+psycopg2://dagster:")
