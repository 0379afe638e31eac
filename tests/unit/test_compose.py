"""docker-compose.yml cannot run here (no Docker engine); check that it stays consistent."""

from pathlib import Path

import yaml

from lineage_dagster.ingest.worker_service import STOP_GRACE_S
from lineage_dagster.settings import load_settings

ROOT = Path(__file__).parents[2]


def test_compose_has_every_service_and_valid_pipeline_settings():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    expected = {"kafka", "kafka-init", "minio", "minio-init", "postgres", "code", "workers", "webserver", "daemon", "generator"}
    assert expected <= set(services)
    env = {k: str(v) for k, v in services["code"]["environment"].items() if "${" not in str(v)}
    settings = load_settings(env)
    assert settings.kafka_bootstrap_servers == "kafka:9092"
    assert str(settings.commit_log) == "s3://flink-data/write-ahead-commit-log"
    assert services["webserver"]["ports"] == ["127.0.0.1:3000:3000"]
    for name in ("code", "workers", "webserver", "daemon"):
        assert services[name]["environment"] == services["code"]["environment"]
    # The runs start in the code location's container: the worker service's socket must be there.
    socket = settings.subtask_worker_socket
    assert socket is not None and services["workers"]["command"] == ["lineage", "workers"]
    for name in ("code", "workers"):
        assert f"worker-socket:{socket.parent}" in services[name]["volumes"]
    # Docker's stop waits longer than the service lets the subtasks in hand finish.
    grace_s = int(services["workers"]["stop_grace_period"].removesuffix("s"))
    assert grace_s > STOP_GRACE_S
    for path in ("deploy/dagster-compose.yaml", "deploy/workspace-compose.yaml"):
        assert (ROOT / path).exists() and path in (ROOT / "Dockerfile").read_text()
    instance = yaml.safe_load((ROOT / "deploy/dagster-compose.yaml").read_text())
    assert "postgres" in instance["storage"]
