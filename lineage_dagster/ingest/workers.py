"""Subtasks in forked worker processes, so that a run's subtasks use more than one core.

Python runs one thread at a time, and the in-process executor runs a run's steps one after
another, so without workers PARALLELISM only splits the work. A worker is a `fork` of the run
process: it starts in ~10 ms with everything already loaded, writes one subtask's files exactly as
the run process would (same keys, same bytes) and sends back what it wrote through a pipe.

Forking a process that has threads is safe only for what the child then uses: the child uses no
Dagster machinery, opens its own Kafka consumer and S3 connections, and runs polars only if its
thread pool was not started before the fork (a child would wait on pool threads it does not have).
"""

from __future__ import annotations

import ctypes
import os
import pickle
import re
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

_PR_SET_PDEATHSIG = 1
# Threads of polars' compute pool; the process also has allocator and cleanup threads from the import.
_POLARS_POOL_THREAD = re.compile(r"polars-\d+")


class WorkerError(RuntimeError):
    """A worker process died or failed in a way that left no exception to re-raise."""


def fork_unavailable_reason() -> str | None:
    """Why this process cannot fork subtask workers, or None if it can."""
    if sys.platform != "linux":
        return f"subtask workers need Linux (this is {sys.platform})"
    tasks = Path("/proc/self/task")
    for task in tasks.iterdir():
        try:
            name = (task / "comm").read_text().strip()
        except OSError:  # the thread ended meanwhile
            continue
        if _POLARS_POOL_THREAD.fullmatch(name):
            return "polars' thread pool already runs in this process, and a forked worker would wait on its threads"
    return None


def die_with_parent(parent: int) -> None:
    """This process is killed when `parent` ends, so a killed run (or worker service) leaves no writer behind."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _report(pipe: int, payload: bytes) -> None:
    view = memoryview(payload)
    while view:
        view = view[os.write(pipe, view) :]


def picklable_error(error: BaseException) -> BaseException:
    """The exception itself if it survives pickling (a user then sees the same error type and
    message as without workers), else its text."""
    trace = "".join(traceback.format_exception(error)).strip()
    try:
        error.add_note(f"raised in a worker process:\n{trace}")
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:  # noqa: BLE001 - any unpicklable exception is reported as text
        return WorkerError(trace)


class RunningTask(Protocol[T_co]):
    """A value being computed elsewhere: by a forked `Worker` or a worker service's process."""

    pid: int | None
    started: float  # time.monotonic() when it was handed over

    def result(self) -> T_co: ...


@dataclass
class Worker(Generic[T]):
    """A forked process computing one value."""

    label: str  # for errors: what the worker was doing
    pid: int
    pipe: int
    started: float  # time.monotonic() at the fork

    def result(self) -> T:
        """Wait for the worker; its value, or its exception raised here."""
        chunks = []
        try:
            while chunk := os.read(self.pipe, 1 << 20):
                chunks.append(chunk)
        except BaseException:  # e.g. the run is being terminated: stop the worker too
            os.kill(self.pid, signal.SIGKILL)
            raise
        finally:
            os.close(self.pipe)
            _, status = os.waitpid(self.pid, 0)
        if not chunks:
            raise WorkerError(f"{self.label}: its worker process (pid {self.pid}) {describe_exit(status)} before it finished")
        succeeded, value = pickle.loads(b"".join(chunks))
        if not succeeded:
            raise value
        return value


def describe_exit(status: int) -> str:
    """How a waited-for process ended, as the end of a sentence: 'was killed by SIGKILL (out of memory?)'."""
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        cause = " (out of memory?)" if number == signal.SIGKILL else ""
        return f"was killed by {signal.Signals(number).name}{cause}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"


def start_worker(label: str, compute: Callable[[], T], after_fork: Callable[[], None]) -> Worker[T]:
    """Fork a process that runs `after_fork()` then `compute()` and reports the value (or the
    exception) back. Call only when `fork_unavailable_reason()` is None."""
    parent, started = os.getpid(), time.monotonic()
    read_end, write_end = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the worker: never returns into the caller's code
        status = 0
        try:
            os.close(read_end)
            die_with_parent(parent)
            after_fork()
            payload = pickle.dumps((True, compute()))
        except BaseException as error:  # noqa: BLE001 - everything goes back to the run process
            payload = pickle.dumps((False, picklable_error(error)))
        try:
            _report(write_end, payload)
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:  # noqa: BLE001 - the parent sees no report and says how the worker ended
            status = 1
        os._exit(status)  # no atexit handlers or finalizers of the run process's objects
    os.close(write_end)
    return Worker(label=label, pid=pid, pipe=read_end, started=started)


class WorkerPool(Generic[T]):
    """Workers for tasks 0..count-1, started in task order, at most `limit` running at once; a
    task's worker starts early when its result is asked for first."""

    def __init__(self, count: int, limit: int, start: Callable[[int], RunningTask[T]]) -> None:
        self.count, self.limit, self._start = count, max(1, limit), start
        self.running: dict[int, RunningTask[T]] = {}
        self.next_task = 0
        self.fill()

    def fill(self) -> None:
        while len(self.running) < self.limit and self.next_task < self.count:
            self._start_next()

    def _start_next(self) -> None:
        self.running[self.next_task] = self._start(self.next_task)
        self.next_task += 1

    def handles(self, task: int) -> bool:
        return task in self.running or self.next_task <= task < self.count

    def collect(self, task: int) -> tuple[T, RunningTask[T]]:
        """Task `task`'s value and the worker that computed it (its exception is raised here)."""
        while self.next_task <= task:
            self._start_next()
        worker = self.running.pop(task)
        try:
            return worker.result(), worker
        finally:
            self.fill()

    @property
    def done(self) -> bool:
        return not self.running and self.next_task >= self.count
