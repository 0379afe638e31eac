"""Celery workers for the executor tests, started as the README says: `dagster-celery worker start
-A lineage_dagster.celery_app`, each in a working directory, home, temp folder and DAGSTER_HOME of
its own, as on separate machines."""

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

BIN = Path(sys.executable).parent
POSTGRES_INSTANCE = Path(__file__).parents[1] / "lineage_dagster" / "deploy" / "dagster-postgres.yaml"


@dataclass
class Worker:
    name: str
    process: subprocess.Popen
    root: Path

    @property
    def log(self) -> str:
        return (self.root / "worker.log").read_text(errors="replace")

    def steps_done(self) -> int:
        return self.log.count("] succeeded in ")

    def kill_9(self) -> None:
        """The machine dies: the worker and its pool processes, at once."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(30)


def instance_home(path: Path) -> Path:
    """A DAGSTER_HOME with the shared (PostgreSQL) instance config."""
    path.mkdir(parents=True, exist_ok=True)
    shutil.copy(POSTGRES_INSTANCE, path / "dagster.yaml")
    return path


def empty_broker(env: dict[str, str]) -> None:
    """Tasks an earlier test left queued must not reach this test's workers."""
    redis.Redis.from_url(env["CELERY_BROKER_URL"]).flushdb()


def start_worker(name: str, env: dict[str, str], root: Path) -> Worker:
    for folder in ("work", "home", "tmp"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    worker_env = {
        **env,
        "PATH": f"{BIN}:{os.environ['PATH']}",  # dagster-celery runs `celery` from PATH
        "HOME": str(root / "home"),
        "TMPDIR": str(root / "tmp"),
        "DAGSTER_HOME": str(instance_home(root / "dagster-home")),
    }
    command = [str(BIN / "dagster-celery"), "worker", "start", "-A", "lineage_dagster.celery_app", "-n", name]
    command += ["--", "--concurrency=1"]
    with (root / "worker.log").open("w") as log:
        process = subprocess.Popen(
            command, cwd=root / "work", env=worker_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    worker = Worker(name, process, root)
    deadline = time.monotonic() + 90
    while f"{name}@" not in worker.log or " ready." not in worker.log:
        if process.poll() is not None or time.monotonic() > deadline:
            worker.stop()
            raise AssertionError(f"celery worker {name} did not start:\n{worker.log[-3000:]}")
        time.sleep(0.3)
    return worker


@contextmanager
def celery_workers(env: dict[str, str], root: Path, count: int = 2) -> Iterator[list[Worker]]:
    empty_broker(env)
    workers: list[Worker] = []
    try:
        for n in range(count):
            workers.append(start_worker(f"w{n + 1}", env, root / f"w{n + 1}"))
        yield workers
    finally:
        for worker in workers:
            worker.stop()
