"""The worker service's protocol, with a stand-in for the subtask: values and exceptions come back,
a run that goes away leaves no writer behind, dead workers are replaced, other code is refused."""

import os
import signal
import socket
import stat
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from lineage_dagster.ingest.worker_service import (
    ServiceWorker,
    SubtaskRequest,
    WorkerServiceUnavailable,
    check_worker_service,
    serve,
)
from lineage_dagster.ingest.workers import WorkerError
from lineage_dagster.ledger.paths import S3Location
from lineage_dagster.ledger.plan import OffsetsLostError
from lineage_dagster.settings import S3Settings
from tests.unit.test_plan import make_plan

PLAN = make_plan(committed={0: 0, 1: 0}, watermarks={0: (0, 10), 1: (0, 10)}, checkpoint_id=7)
OUTPUT = S3Location("bucket", "output")


def _request(subtask: int) -> SubtaskRequest:
    return SubtaskRequest(
        plan=PLAN,
        subtask=subtask,
        kafka_config={"bootstrap.servers": "unused:9092"},
        s3=S3Settings(endpoint_url=None, access_key_id=None, secret_access_key=None, region="us-east-1"),
        output=OUTPUT,
        dropped=OUTPUT,
        max_record_bytes=1024,
    )


RECYCLE_RSS_BYTES = 400 << 20
_kept: list[bytes] = []  # what a stand-in subtask leaves its worker holding


def _stand_in(scratch: Path):
    """Subtask 0 answers, 1 raises, 2 writes a file after a second, 3 kills its process, 4 leaves
    its process holding more than RECYCLE_RSS_BYTES."""

    def compute(request: SubtaskRequest) -> object:
        if request.subtask == 1:
            raise OffsetsLostError("partition 3: planned offsets [0, 10) are no longer in Kafka")
        if request.subtask == 2:
            (scratch / "writer.pid").write_text(str(os.getpid()))
            time.sleep(1.0)
            (scratch / "written").write_text("late")
        if request.subtask == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        if request.subtask == 4:
            _kept.append(os.urandom(RECYCLE_RSS_BYTES))
        return ("wrote", request.plan.checkpoint_id, request.subtask)

    return compute


def _wait_for(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _start_service(path: Path, scratch: Path) -> int:
    """The service's pid, once it answers at `path`."""
    pid = os.fork()
    if pid == 0:  # the service, as `lineage workers` runs it
        status = 0
        try:
            serve(path, 2, compute=_stand_in(scratch), warm_up=lambda: None, recycle_rss_bytes=RECYCLE_RSS_BYTES)
        except BaseException:  # noqa: BLE001 - the test sees the service missing
            status = 1
        os._exit(status)
    try:
        _wait_for(lambda: _answers(path))
    except BaseException:
        os.kill(pid, signal.SIGKILL)  # not left running after a failed test
        os.waitpid(pid, 0)
        raise
    return pid


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "run" / "workers.sock"
    pid = _start_service(path, tmp_path)
    try:
        yield path
    finally:
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)
    assert not path.exists(), "the service removes its socket when it stops"


def test_a_subtask_comes_back_with_the_process_that_wrote_it(service: Path):
    worker = ServiceWorker.send(service, _request(0), "checkpoint_id=7 subtask=0")
    assert worker.result() == ("wrote", 7, 0)
    assert worker.pid not in (None, os.getpid())
    assert check_worker_service(service) > 0


def test_the_subtasks_exception_is_raised_in_the_run_with_its_type_and_message(service: Path):
    with pytest.raises(OffsetsLostError, match=r"partition 3: planned offsets \[0, 10\)") as raised:
        ServiceWorker.send(service, _request(1), "checkpoint_id=7 subtask=1").result()
    assert any("raised in a worker process" in note for note in raised.value.__notes__)


def test_a_run_that_goes_away_leaves_no_writer_behind_and_the_worker_is_replaced(service: Path, tmp_path: Path):
    worker = ServiceWorker.send(service, _request(2), "checkpoint_id=7 subtask=2")
    _wait_for((tmp_path / "writer.pid").exists)
    writer = int((tmp_path / "writer.pid").read_text())
    worker.connection.close()  # what the kernel does when a run's process is killed
    time.sleep(1.5)
    assert not (tmp_path / "written").exists(), "the writer finished a subtask nobody waits for"
    assert not Path(f"/proc/{writer}").exists()
    # Both workers answer again: the one that exited was replaced.
    answers = [ServiceWorker.send(service, _request(0), f"subtask={n}") for n in range(2)]
    assert [a.result() for a in answers] == [("wrote", 7, 0)] * 2
    assert writer not in {a.pid for a in answers}


def test_a_worker_that_dies_fails_its_subtask_with_a_pointer_to_the_service_log(service: Path):
    with pytest.raises(WorkerError, match=r"checkpoint_id=7 subtask=3: the worker service's process ended .* service's log"):
        ServiceWorker.send(service, _request(3), "checkpoint_id=7 subtask=3").result()
    _wait_for(lambda: _answers(service))


def _answers(path: Path) -> bool:
    try:
        return ServiceWorker.send(path, _request(0), "probe").result() == ("wrote", 7, 0)
    except (WorkerError, WorkerServiceUnavailable):
        return False


def test_a_worker_left_holding_much_memory_gives_way_to_a_fresh_one(service: Path):
    holder = ServiceWorker.send(service, _request(4), "checkpoint_id=7 subtask=4")
    assert holder.result() == ("wrote", 7, 4)
    _wait_for(lambda: not Path(f"/proc/{holder.pid}").exists())
    light = ServiceWorker.send(service, _request(0), "checkpoint_id=7 subtask=0")
    assert light.result() == ("wrote", 7, 0)
    assert Path(f"/proc/{light.pid}").exists(), "a worker under the limit keeps serving"
    answers = [ServiceWorker.send(service, _request(0), f"subtask={n}") for n in range(2)]
    assert [a.result() for a in answers] == [("wrote", 7, 0)] * 2
    assert holder.pid not in {a.pid for a in answers}


def test_a_worker_refuses_a_run_of_other_code(service: Path):
    other_code = replace(_request(0), code="0" * 64)
    with pytest.raises(WorkerServiceUnavailable, match=r"runs other code than this run .* restart `lineage workers`"):
        ServiceWorker.send(service, other_code, "checkpoint_id=7 subtask=0").result()


def test_the_socket_is_private_and_taken_by_one_service_only(service: Path):
    assert stat.S_IMODE(service.stat().st_mode) == 0o600
    with pytest.raises(WorkerServiceUnavailable, match="a worker service already listens there"):
        serve(service, 1, compute=lambda request: None, warm_up=lambda: None)


def test_no_service_names_the_setting_and_the_command(tmp_path: Path):
    with pytest.raises(WorkerServiceUnavailable, match=r"SUBTASK_WORKER_SOCKET=.*nothing.sock.*lineage workers"):
        check_worker_service(tmp_path / "nothing.sock")


def test_a_stale_socket_left_by_a_dead_service_is_replaced(tmp_path: Path):
    path = tmp_path / "run" / "workers.sock"
    path.parent.mkdir()
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens
    with pytest.raises(WorkerServiceUnavailable):
        check_worker_service(path)
    pid = _start_service(path, tmp_path)  # answers there
    os.kill(pid, signal.SIGTERM)
    os.waitpid(pid, 0)


def _exit_status_within(pid: int, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError(f"the service did not stop within {timeout_s}s")


def _stop_while_writing(tmp_path: Path) -> tuple[Path, int, ServiceWorker]:
    """A service sent SIGTERM while a worker writes subtask 2; once it has removed its socket."""
    path = tmp_path / "run" / "workers.sock"
    pid = _start_service(path, tmp_path)
    worker = ServiceWorker.send(path, _request(2), "checkpoint_id=7 subtask=2")
    _wait_for((tmp_path / "writer.pid").exists)
    os.kill(pid, signal.SIGTERM)
    _wait_for(lambda: not path.exists())
    return path, pid, worker


def test_a_stopped_service_finishes_the_subtask_in_hand_and_takes_no_more(tmp_path: Path):
    path, pid, worker = _stop_while_writing(tmp_path)
    with pytest.raises(WorkerServiceUnavailable, match="SUBTASK_WORKER_SOCKET"):
        check_worker_service(path)  # a run starting now writes its subtasks itself
    assert worker.result() == ("wrote", 7, 2)
    assert (tmp_path / "written").read_text() == "late"
    assert _exit_status_within(pid, 5.0) == 0


def test_a_second_signal_stops_the_service_at_once(tmp_path: Path):
    _, pid, worker = _stop_while_writing(tmp_path)
    os.kill(pid, signal.SIGTERM)
    with pytest.raises(WorkerError, match="ended before it finished"):
        worker.result()
    assert _exit_status_within(pid, 2.0) == 0
    time.sleep(1.2)
    assert not (tmp_path / "written").exists(), "a subtask outlived a service stopped at once"
