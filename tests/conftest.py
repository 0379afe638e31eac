"""Fixtures for tests against the real services: a Kafka + SeaweedFS stack on test ports, and a
fresh topic and S3 prefix per test so tests never see each other's data. Every test under
tests/integration is marked `services`; `pytest -m "not services"` runs the rest, offline."""

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lineage_dagster.local_stack import LocalStack, StackConfig
from lineage_dagster.settings import load_resources
from tests.helpers import TEST_PORT_OFFSET, TEST_STACK_DIR, Lake

INTEGRATION = Path(__file__).parent / "integration"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION in item.path.parents:
            item.add_marker(pytest.mark.services)


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    local = LocalStack(StackConfig(data_dir=TEST_STACK_DIR, secured=True).shifted(TEST_PORT_OFFSET, TEST_STACK_DIR))
    if not any(local.status().values()):
        shutil.rmtree(TEST_STACK_DIR, ignore_errors=True)
    local.up()
    yield local
    if not os.environ.get("LINEAGE_KEEP_TEST_STACK"):
        local.down()


@pytest.fixture(scope="session")
def celery_services(stack: LocalStack) -> LocalStack:
    """Redis as the Celery broker and PostgreSQL for the shared Dagster instance, on the same stack."""
    stack.start_redis()
    stack.start_postgres()
    return stack


def _lake(stack: LocalStack, monkeypatch: pytest.MonkeyPatch, *, secured: bool) -> Lake:
    name = f"t{uuid.uuid4().hex[:12]}"
    stack.create_topic(name, 10)
    env = stack.secured_pipeline_env(name) if secured else stack.pipeline_env(name)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    resources = load_resources(env)
    return Lake(name=name, env=env, resources=resources, store=resources.lake.store(), stack=stack)


@pytest.fixture
def lake(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Lake:
    return _lake(stack, monkeypatch, secured=False)


@pytest.fixture
def secured_lake(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Lake:
    """The same, through Kafka's SASL_SSL (SCRAM-SHA-512) listener and S3 over HTTPS, both
    certified by the stack's own CA (KAFKA_SSL_CA_LOCATION, AWS_CA_BUNDLE)."""
    return _lake(stack, monkeypatch, secured=True)


@pytest.fixture
def dagster_home(tmp_path: Path) -> Path:
    """A DAGSTER_HOME with the project's instance config."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(Path(__file__).parents[1] / "lineage_dagster" / "deploy" / "dagster.yaml", home / "dagster.yaml")
    return home
