"""`lineage workers` against the real Kafka, S3 and Dagster: runs hand it their subtasks, it writes
the same objects a run writes itself, a killed run leaves none of its writers behind, a killed
worker fails only its run, a stopped service lets the run in hand commit, and without a service the
runs fall back to writing themselves."""

import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lineage_dagster.ledger.protocol import read_marker
from tests.conftest import BIN, CHECKPOINT_COMMAND, run_checkpoint_cli
from tests.integration.test_faults import KILLED, assert_exactly_once, data_objects, succeed

BY_SERVICE = re.compile(r"subtask=\d wrote \d+ records .* in worker service process \d+")


class Service:
    def __init__(self, lake, socket: Path, log: Path, **env: str) -> None:
        self.socket, self.log = socket, log
        self.process = subprocess.Popen(
            [str(BIN / "lineage"), "workers", "--socket", str(socket), "--workers", "2"],
            env={**lake.env, "PATH": str(BIN), **env},
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while "worker service at" not in self.output():
            assert self.process.poll() is None, self.output()
            assert time.monotonic() < deadline, self.output()
            time.sleep(0.1)

    def output(self) -> str:
        return self.log.read_text()

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(30)


@pytest.fixture
def start_service(lake, tmp_path: Path) -> Iterator:
    started: list[Service] = []

    def start(**env: str) -> Service:
        service = Service(lake, tmp_path / "service" / "workers.sock", tmp_path / f"service-{len(started)}.log", **env)
        started.append(service)
        return service

    yield start
    for service in started:
        if service.process.poll() is None:
            service.stop()


def _run_while_service_holds_subtasks(lake, dagster_home, service: Service, holding: int) -> subprocess.Popen:
    """A checkpoint run started against `service` (armed to sleep at service_subtask), once
    `holding` of its subtasks sleep in the service's workers."""
    run = subprocess.Popen(
        CHECKPOINT_COMMAND,
        env={**lake.env, "PATH": str(BIN), "DAGSTER_HOME": str(dagster_home), "SUBTASK_WORKER_SOCKET": str(service.socket)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    while service.output().count("fault injection: sleeping") < holding:
        assert run.poll() is None and time.monotonic() < deadline, service.output()
        time.sleep(0.1)
    assert run.poll() is None
    return run


def test_the_service_writes_the_objects_the_run_would_write_itself(lake, dagster_home, start_service):
    service = start_service()
    lake.produce(5000)
    crashed = run_checkpoint_cli(lake, dagster_home, SUBTASK_WORKER_SOCKET=str(service.socket), LINEAGE_FAULT="after_data:kill")
    output = crashed.stdout + crashed.stderr
    assert crashed.returncode == KILLED, output[-3000:]
    assert f"written by the worker service at {service.socket}" in output, output[-3000:]
    assert len(BY_SERVICE.findall(output)) == 2, output[-3000:]
    by_service = data_objects(lake)
    assert len(by_service) == lake.settings.parallelism
    for bucket, key in by_service:
        lake.store.client.delete_object(Bucket=bucket, Key=key)

    retried = succeed(lake, dagster_home, SUBTASK_WORKERS="0")  # the run process writes them itself
    assert "without worker processes: SUBTASK_WORKERS=0" in retried.stdout + retried.stderr
    assert data_objects(lake) == by_service
    assert_exactly_once(lake, 5000)
    assert "writing checkpoint_id=1 subtask=0" in service.output()


def test_a_run_killed_while_the_service_writes_leaves_no_writer_and_the_next_run_converges(lake, dagster_home, start_service):
    # Each subtask's worker waits 4 s before writing anything: the run is killed meanwhile.
    service = start_service(LINEAGE_FAULT="service_subtask:sleep=4")
    lake.produce(3000)
    run = _run_while_service_holds_subtasks(lake, dagster_home, service, 1)
    run.kill()
    run.communicate(timeout=30)
    time.sleep(5)  # past the worker's sleep: had it kept going, it would have written by now
    assert data_objects(lake) == {}, "a writer outlived its run"
    assert "went away; exiting so no writer is left behind" in service.output()
    assert "starting another" in service.output()

    result = succeed(lake, dagster_home, SUBTASK_WORKER_SOCKET=str(service.socket))
    assert len(BY_SERVICE.findall(result.stdout + result.stderr)) == 2
    assert read_marker(lake.store, lake.settings.commit_log, 1).record_count == 3000
    assert_exactly_once(lake, 3000)


def test_a_killed_service_worker_fails_its_run_and_the_next_run_converges(lake, dagster_home, start_service, tmp_path):
    service = start_service(LINEAGE_FAULT=f"service_subtask:kill:{tmp_path / 'killed'}")
    lake.produce(3000)
    failed = run_checkpoint_cli(lake, dagster_home, SUBTASK_WORKER_SOCKET=str(service.socket))
    output = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert "the worker service's process ended before it finished" in output, output[-3000:]

    result = succeed(lake, dagster_home, SUBTASK_WORKER_SOCKET=str(service.socket))
    assert len(BY_SERVICE.findall(result.stdout + result.stderr)) == 2
    assert_exactly_once(lake, 3000)


def test_without_a_service_the_run_warms_and_writes_its_subtasks_itself(lake, dagster_home, tmp_path, start_service):
    lake.produce(2000)
    missing = tmp_path / "nobody" / "workers.sock"
    result = succeed(lake, dagster_home, SUBTASK_WORKER_SOCKET=str(missing))
    output = result.stdout + result.stderr
    assert f"SUBTASK_WORKER_SOCKET={missing}: no worker service answers there" in output
    assert "this run writes its subtasks itself" in output and not BY_SERVICE.search(output)

    service = start_service()  # once one answers, the next run uses it
    lake.produce(1000)
    result = succeed(lake, dagster_home, SUBTASK_WORKER_SOCKET=str(service.socket))
    assert len(BY_SERVICE.findall(result.stdout + result.stderr)) == 2
    assert_exactly_once(lake, 3000)


def test_a_service_stopped_while_it_writes_finishes_and_the_run_commits(lake, dagster_home, start_service):
    # Each subtask's worker waits 3 s before writing: the service is stopped meanwhile.
    service = start_service(LINEAGE_FAULT="service_subtask:sleep=3")
    lake.produce(3000)
    run = _run_while_service_holds_subtasks(lake, dagster_home, service, 2)
    service.process.send_signal(signal.SIGTERM)
    output, _ = run.communicate(timeout=60)
    assert run.returncode == 0, output[-3000:]
    assert len(BY_SERVICE.findall(output)) == 2, output[-3000:]
    assert service.process.wait(30) == 0
    assert "subtasks in hand may finish" in service.output()
    assert not service.socket.exists()
    assert_exactly_once(lake, 3000)

    lake.produce(1000)  # with the service gone, the next run writes its subtasks itself
    result = succeed(lake, dagster_home, SUBTASK_WORKER_SOCKET=str(service.socket))
    assert "no worker service answers there" in result.stdout + result.stderr
    assert_exactly_once(lake, 4000)
