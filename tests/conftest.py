"""Fixtures for tests against the real services: a Kafka + SeaweedFS stack on test ports, and a
fresh topic and S3 prefix per test so tests never see each other's data."""

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lineage_dagster.clients.s3 import S3ObjectStore, make_s3_client
from lineage_dagster.generator import produce_events
from lineage_dagster.local_stack import LocalStack, StackConfig
from lineage_dagster.settings import Settings, load_settings

# The developer stack uses the default ports; the suite's stack sits 21000 above them, clear of the
# ports docker-compose.yml publishes (tests/unit/test_local_stack_ports.py checks both).
TEST_PORT_OFFSET = 21000
TEST_STACK_DIR = Path("/tmp/lineage-dagster-test-stack")
BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    local = LocalStack(StackConfig(data_dir=TEST_STACK_DIR).shifted(TEST_PORT_OFFSET, TEST_STACK_DIR))
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


@dataclass
class Lake:
    """One test's own topic and S3 prefixes, with the env a pipeline process needs for them."""

    name: str
    env: dict[str, str]
    settings: Settings
    store: S3ObjectStore
    stack: LocalStack

    @property
    def client_config(self) -> dict[str, str]:
        return {"bootstrap.servers": self.settings.kafka_bootstrap_servers}

    def produce(self, count: int, rate: float | None = None) -> int:
        return produce_events(self.client_config, self.settings.kafka_topic, rate=rate, count=count)


@pytest.fixture
def lake(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Lake:
    name = f"t{uuid.uuid4().hex[:12]}"
    stack.create_topic(name, 10)
    env = stack.pipeline_env(name)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = load_settings(env)
    return Lake(name=name, env=env, settings=settings, store=S3ObjectStore(make_s3_client(settings.s3)), stack=stack)


CHECKPOINT_COMMAND = [str(BIN / "dagster"), "job", "execute", "-m", "lineage_dagster.definitions", "-j", "checkpoint_job"]


def run_checkpoint_cli(
    lake: Lake, dagster_home: Path, command: list[str] = CHECKPOINT_COMMAND, **extra_env: str
) -> subprocess.CompletedProcess:
    """`dagster job execute` of one checkpoint (or another `command`), as a user runs it in the project."""
    return subprocess.run(
        command,
        cwd=Path(__file__).parents[1],
        env={**lake.env, "PATH": str(BIN), "DAGSTER_HOME": str(dagster_home), **extra_env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def start_checkpoint_cli(lake: Lake, dagster_home: Path, fault: str) -> subprocess.Popen:
    """The same, in the background, with a fault armed (e.g. `after_plan:sleep=6`)."""
    return subprocess.Popen(
        CHECKPOINT_COMMAND,
        env={**lake.env, "PATH": str(BIN), "DAGSTER_HOME": str(dagster_home), "LINEAGE_FAULT": fault},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for_object(lake: Lake, key: str, process: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while lake.store.get(lake.settings.commit_log.bucket, key) is None:
        assert time.monotonic() < deadline, f"{key} never appeared"
        assert process.poll() is None, f"the run exited with {process.returncode} before writing {key}"
        time.sleep(0.3)


@pytest.fixture
def dagster_home(tmp_path: Path) -> Path:
    """A DAGSTER_HOME with the project's instance config."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(Path(__file__).parents[1] / "lineage_dagster" / "deploy" / "dagster.yaml", home / "dagster.yaml")
    return home
