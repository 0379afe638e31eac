"""Helpers the tests share: the test stack's ports, a test's own topic and prefixes, running a
checkpoint from the CLI as a user does, and a plan left by a crashed run."""

import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from lineage_dagster.clients.s3 import S3ObjectStore
from lineage_dagster.generator import produce_events
from lineage_dagster.ledger.paths import S3Location, plan_key
from lineage_dagster.ledger.plan import CheckpointPlan, PartitionRange
from lineage_dagster.local_stack import LocalStack
from lineage_dagster.settings import PipelineResources

# The developer stack uses the default ports; the suite's stack sits 21000 above them, clear of the
# ports docker-compose.yml publishes (tests/unit/test_local_stack_ports.py checks both).
TEST_PORT_OFFSET = 21000
TEST_STACK_DIR = Path("/tmp/lineage-dagster-test-stack")
BIN = Path(sys.executable).parent


@dataclass
class Lake:
    """One test's own topic and S3 prefixes, with the env a pipeline process needs for them."""

    name: str
    env: dict[str, str]
    resources: PipelineResources
    store: S3ObjectStore
    stack: LocalStack

    @property
    def client_config(self) -> dict[str, str]:
        return self.resources.kafka.client_config()

    @property
    def parallelism(self) -> int:
        return self.resources.execution.parallelism

    @property
    def commit_log(self) -> S3Location:
        return self.resources.lake.commit_log

    @property
    def output(self) -> S3Location:
        return self.resources.lake.output

    @property
    def dropped(self) -> S3Location:
        return self.resources.lake.dropped

    def produce(self, count: int, rate: float | None = None) -> int:
        return produce_events(self.client_config, self.name, rate=rate, count=count)


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
    while lake.store.get(lake.commit_log.bucket, key) is None:
        assert time.monotonic() < deadline, f"{key} never appeared"
        assert process.poll() is None, f"the run exited with {process.returncode} before writing {key}"
        time.sleep(0.3)


def store_crashed_plan(lake):
    """Checkpoint 1 planned (hour 19:00) by a run that died before committing it."""
    plan = CheckpointPlan(
        checkpoint_id=1,
        topic=lake.name,
        hour=datetime(2026, 11, 25, 19, tzinfo=UTC),
        planned_at_ms=0,
        run_id="crashed-run",
        parallelism=2,
        ranges=(PartitionRange(0, 0, 0),),
    )
    log = lake.commit_log
    assert lake.store.put_if_absent(log.bucket, plan_key(log, 1), plan.to_json())
