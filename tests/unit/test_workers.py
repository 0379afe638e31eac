"""Forked worker processes: values and exceptions come back, deaths are reported, none outlives its parent."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import polars as pl
import pytest

from lineage_dagster.ingest.workers import WorkerError, WorkerPool, fork_unavailable_reason, start_worker
from lineage_dagster.ledger.plan import OffsetsLostError


def _nothing() -> None:
    pass


def test_a_worker_computes_in_its_own_process():
    worker = start_worker("pid", os.getpid, after_fork=_nothing)
    assert worker.result() == worker.pid != os.getpid()


def test_a_large_value_comes_back_whole():
    value = os.urandom(3 << 20)  # larger than a pipe's buffer
    assert start_worker("bytes", lambda: value, after_fork=_nothing).result() == value


def test_the_workers_exception_is_raised_with_its_type_message_and_traceback():
    def lose_offsets() -> None:
        raise OffsetsLostError("partition 3: planned offsets [0, 10) are no longer in Kafka")

    with pytest.raises(OffsetsLostError, match=r"partition 3: planned offsets \[0, 10\)") as raised:
        start_worker("checkpoint_id=7 subtask=1", lose_offsets, after_fork=_nothing).result()
    assert any("lose_offsets" in note for note in raised.value.__notes__)


def test_an_exception_that_cannot_be_pickled_comes_back_as_text():
    class Local(Exception):  # a local class cannot be pickled
        pass

    def fail() -> None:
        raise Local("the detail a user needs")

    with pytest.raises(WorkerError, match="the detail a user needs"):
        start_worker("local", fail, after_fork=_nothing).result()


def test_a_killed_worker_is_reported_with_its_signal_and_task():
    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    with pytest.raises(WorkerError, match=r"checkpoint_id=7 subtask=0: .* was killed by SIGKILL \(out of memory\?\)"):
        start_worker("checkpoint_id=7 subtask=0", die, after_fork=_nothing).result()


def test_after_fork_runs_in_the_worker_before_the_task():
    marks: list[str] = []
    worker = start_worker("order", lambda: list(marks), after_fork=lambda: marks.append("after_fork"))
    assert worker.result() == ["after_fork"]
    assert marks == []  # the parent's list is untouched


def test_the_pool_runs_at_most_its_limit_at_once_and_in_task_order():
    started: list[int] = []

    def start(task: int):
        started.append(task)
        return start_worker(f"task {task}", lambda: task * 10, after_fork=_nothing)

    pool = WorkerPool(count=5, limit=2, start=start)
    assert started == [0, 1] and pool.handles(4) and not pool.handles(5)
    assert pool.collect(0)[0] == 0
    assert started == [0, 1, 2]
    assert pool.collect(4)[0] == 40  # asked for before its turn: started at once
    assert started == [0, 1, 2, 3, 4]
    assert [pool.collect(task)[0] for task in (1, 2, 3)] == [10, 20, 30]
    assert pool.done


def test_a_worker_dies_with_its_parent(tmp_path):
    pid_file = tmp_path / "worker.pid"
    parent = textwrap.dedent(
        f"""
        import os, signal, time
        from lineage_dagster.ingest.workers import start_worker
        def sleep():  # the pid file appears whole: the parent is killed as soon as it exists
            open({str(pid_file)!r} + ".tmp", "w").write(str(os.getpid()))
            os.replace({str(pid_file)!r} + ".tmp", {str(pid_file)!r})
            time.sleep(60)
        start_worker("sleeper", sleep, after_fork=lambda: None)
        while not os.path.exists({str(pid_file)!r}):
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    subprocess.run([sys.executable, "-c", parent], check=False, timeout=30)
    worker = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(worker)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has exited; only its parent (init here) has yet to reap it


def test_forking_is_refused_once_polars_thread_pool_runs():
    code = "import polars; from lineage_dagster.ingest.workers import fork_unavailable_reason as r; print(r())"
    fresh = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
    )
    assert fresh.stdout.strip() == "None"  # importing polars starts no pool thread
    pl.DataFrame({"a": [2, 1]}).sort("a")  # this process's pool now runs
    assert "polars' thread pool" in (fork_unavailable_reason() or "")
