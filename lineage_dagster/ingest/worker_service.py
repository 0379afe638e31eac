"""`lineage workers`: long-lived processes that write subtasks for the runs, over a Unix socket.

A run that forks its own workers first loads polars and numpy (~0.25 CPU-s), and each forked worker
faults in its memory afresh; on two cores that was about a third of a 1M-record checkpoint. The
service's processes load those modules once and write checkpoint after checkpoint, like Flink's
task managers; the run process then only plans, collects and commits.

Protocol: one request per connection, each way a length-prefixed pickle. A run connects once per
subtask, sends a `SubtaskRequest` and waits for `(succeeded, value, pid)`. The files a worker
writes are exactly those the run would write itself (same code, same keys, same bytes): requests
carry a fingerprint of the sender's code and a worker refuses code other than its own. If the run
goes away mid-subtask, the worker writing for it exits (a killed run leaves no writer behind) and
the service starts another. If a worker dies, its run sees the connection close and fails the step.
Stopped (SIGTERM or SIGINT), the service takes no new subtasks and lets those in hand finish, for
up to STOP_GRACE_S; a second signal stops it at once.

Trust: a request is a pickle, so the socket is made 0600 and workers serve peers of their own uid only.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import importlib
import logging
import os
import pickle
import select
import signal
import socket
import stat
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from lineage_dagster import faults
from lineage_dagster.ingest.collector import build_long_lived
from lineage_dagster.ingest.workers import (
    WorkerError,
    describe_exit,
    die_with_parent,
    fork_unavailable_reason,
    picklable_error,
)
from lineage_dagster.ledger.commit_log import SubtaskFiles
from lineage_dagster.ledger.paths import S3Location
from lineage_dagster.ledger.plan import CheckpointPlan
from lineage_dagster.settings import S3Settings

log = logging.getLogger(__name__)

SUBTASK_MODULE = "lineage_dagster.ingest.subtask"
_LENGTH = struct.Struct("!Q")
_PEER_CREDENTIALS = struct.Struct("3i")  # pid, uid, gid
# A worker that fails this soon after its start is restarted only after a pause, not in a tight loop.
_RESTART_PAUSE_S = 1.0
# How long a stopping service waits for the subtasks in hand (seconds each for seed records; the
# compose file gives the container a little more). Past it, they are killed and their runs retried.
STOP_GRACE_S = 25.0
# A worker keeps the memory its allocators hold after a subtask (~190 MB after 500k seed records),
# which the next subtask reuses instead of faulting in afresh. Past this much (large records), it
# exits after its subtask and a fresh one takes its place, so idle workers cannot hold a
# checkpoint's worth of memory each.
RECYCLE_RSS_BYTES = 320 << 20


class WorkerServiceUnavailable(RuntimeError):
    """No worker service answers at the socket, or it runs other code; the message says what to do."""


@cache
def code_fingerprint() -> str:
    """SHA-256 of this package's source: a worker writes only for runs of the same code."""
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@dataclass(frozen=True)
class SubtaskRequest:
    """Everything a worker needs to write one subtask, as the run's resources configure it."""

    plan: CheckpointPlan
    subtask: int
    kafka_config: dict[str, str] = field(repr=False)  # may hold a SASL password
    s3: S3Settings
    output: S3Location
    dropped: S3Location
    max_record_bytes: int
    code: str = field(default_factory=code_fingerprint)


@dataclass(frozen=True)
class Hello:
    """Asks whether a worker answers and runs the sender's code."""

    code: str = field(default_factory=code_fingerprint)


def _send(connection: socket.socket, value: object) -> None:
    body = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    connection.sendall(_LENGTH.pack(len(body)) + body)


def _receive(connection: socket.socket) -> Any:
    header = _receive_exactly(connection, _LENGTH.size)
    return pickle.loads(_receive_exactly(connection, _LENGTH.unpack(header)[0]))


def _receive_exactly(connection: socket.socket, size: int) -> bytes:
    buffer = bytearray(size)
    view, filled = memoryview(buffer), 0
    while filled < size:
        received = connection.recv_into(view[filled:])
        if not received:
            raise EOFError(f"connection closed after {filled} of {size} bytes")
        filled += received
    return bytes(buffer)


# --- the run's side -----------------------------------------------------------------------------


def _connect(path: Path, timeout_s: float | None) -> socket.socket:
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.settimeout(timeout_s)
    try:
        connection.connect(str(path))
    except OSError as error:
        connection.close()
        raise WorkerServiceUnavailable(
            f"SUBTASK_WORKER_SOCKET={path}: no worker service answers there ({error.strerror or error}); "
            "start one with `lineage workers`, or unset SUBTASK_WORKER_SOCKET"
        ) from None
    return connection


def check_worker_service(path: Path, timeout_s: float = 5.0) -> int:
    """The pid of a worker of the service at `path`, once it confirms it runs this code.

    Raises WorkerServiceUnavailable otherwise. The answer comes from a worker that is free: with every
    worker busy it waits up to `timeout_s`.
    """
    with _connect(path, timeout_s) as connection:
        try:
            _send(connection, Hello())
            succeeded, value, pid = _receive(connection)
        except (OSError, EOFError) as error:
            raise WorkerServiceUnavailable(f"SUBTASK_WORKER_SOCKET={path}: the worker service did not answer ({error})") from None
    if not succeeded:
        raise value
    return pid


@dataclass
class ServiceWorker:
    """One subtask sent to the worker service; like a forked `Worker`, `result()` waits for it."""

    label: str
    connection: socket.socket
    started: float  # time.monotonic() when sent
    pid: int | None = None  # the service process that wrote it, known once it answered

    @classmethod
    def send(cls, path: Path, request: SubtaskRequest, label: str) -> ServiceWorker:
        started = time.monotonic()
        connection = _connect(path, timeout_s=10.0)
        try:
            _send(connection, request)
        except OSError as error:
            connection.close()
            raise WorkerServiceUnavailable(f"SUBTASK_WORKER_SOCKET={path}: sending {label} failed ({error})") from None
        connection.settimeout(None)  # a subtask takes as long as it takes; the worker watches this connection
        return cls(label=label, connection=connection, started=started)

    def result(self) -> SubtaskFiles:
        try:
            succeeded, value, self.pid = _receive(self.connection)
        except (EOFError, OSError) as error:
            raise WorkerError(
                f"{self.label}: the worker service's process ended before it finished ({error}); see the service's log"
            ) from None
        finally:
            self.connection.close()  # also what tells a worker still writing that this run is gone
        if not succeeded:
            raise value
        return value


# --- the service's side -------------------------------------------------------------------------


@cache
def _s3_store(settings: S3Settings) -> Any:
    from lineage_dagster.clients.s3 import S3ObjectStore, make_s3_client

    return S3ObjectStore(build_long_lived(lambda: make_s3_client(settings)))


def write_requested_subtask(request: SubtaskRequest) -> SubtaskFiles:
    """What a forked worker would do for the same subtask, with the run's Kafka and S3 settings."""
    from lineage_dagster.clients.kafka import KafkaRecordSource

    faults.reach("service_subtask")
    subtask = importlib.import_module(SUBTASK_MODULE)
    return subtask.write_subtask_files(
        plan=request.plan,
        subtask=request.subtask,
        source=KafkaRecordSource(request.kafka_config, request.plan.topic),
        store=_s3_store(request.s3),
        output=request.output,
        dropped=request.dropped,
        max_record_bytes=request.max_record_bytes,
    )


def _warm_up() -> None:
    importlib.import_module(SUBTASK_MODULE).warm_up()


def _peer_uid(connection: socket.socket) -> int:
    credentials = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEER_CREDENTIALS.size)
    return _PEER_CREDENTIALS.unpack(credentials)[1]


def _exit_when_peer_leaves(connection: socket.socket, done: int) -> None:
    """A run sends nothing more after its request: the connection becoming readable or hung up
    means the run is gone, and whatever this process would still write is no longer wanted."""
    poller = select.poll()
    poller.register(connection.fileno(), select.POLLIN | select.POLLRDHUP)
    poller.register(done, select.POLLIN)
    events = dict(poller.poll())
    if done not in events:
        log.warning("worker %s: the run that sent its subtask went away; exiting so no writer is left behind", os.getpid())
        os._exit(3)


def _answer(connection: socket.socket, compute: Callable[[SubtaskRequest], object]) -> bool:
    """Answer the connection's request; whether a subtask was computed."""
    if _peer_uid(connection) != os.geteuid():
        log.warning("worker %s: refused a connection from another user", os.getpid())
        return False
    try:
        request = _receive(connection)
    except (EOFError, OSError, pickle.UnpicklingError):
        return False  # the sender went away or sent garbage; nothing was asked
    if getattr(request, "code", None) != code_fingerprint():
        refusal = WorkerServiceUnavailable(
            "the worker service runs other code than this run (its package was changed since it started); "
            "restart `lineage workers`"
        )
        _send(connection, (False, refusal, os.getpid()))
        return False
    if isinstance(request, Hello):
        _send(connection, (True, None, os.getpid()))
        return False
    label = f"checkpoint_id={request.plan.checkpoint_id} subtask={request.subtask}"
    log.info("worker %s: writing %s", os.getpid(), label)
    done_read, done_write = os.pipe()
    watchdog = threading.Thread(target=_exit_when_peer_leaves, args=(connection, done_read), daemon=True)
    watchdog.start()
    started = time.monotonic()
    try:
        answer = (True, compute(request), os.getpid())
        log.info("worker %s: wrote %s in %.2fs", os.getpid(), label, time.monotonic() - started)
    except BaseException as error:  # noqa: BLE001 - everything goes back to the run
        log.warning("worker %s: %s failed: %s", os.getpid(), label, error)
        answer = (False, picklable_error(error), os.getpid())
    finally:
        os.write(done_write, b"x")
        watchdog.join()
        os.close(done_read)
        os.close(done_write)
    try:
        _send(connection, answer)
    except OSError:
        log.warning("worker %s: %s finished but its run is gone", os.getpid(), label)
    return True


class _Stop:
    """A worker asked to stop exits at once when idle, or once it has answered the run in hand."""

    busy = False
    requested = False

    @classmethod
    def handle(cls, number: int, frame: object) -> None:
        if not cls.busy:
            os._exit(0)  # waiting in accept(): nothing in hand
        cls.requested = True


def _serve_connections(listener: socket.socket, compute: Callable[[SubtaskRequest], object], recycle_rss_bytes: int) -> None:
    """Answer connections until a subtask leaves this process holding more than `recycle_rss_bytes`,
    or the service stops."""
    while not _Stop.requested:
        connection, _ = listener.accept()
        _Stop.busy = True
        with connection:
            computed = _answer(connection, compute)
        _Stop.busy = False
        if computed:
            _release_freed_memory()
            resident = _resident_bytes()
            if resident > recycle_rss_bytes:
                log.info(
                    "worker %s: %s MiB resident after its subtask, over %s MiB; exiting for a fresh worker",
                    os.getpid(),
                    resident >> 20,
                    recycle_rss_bytes >> 20,
                )
                return


def _resident_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _release_freed_memory() -> None:
    """Return what the C heap freed to the OS between checkpoints, so an idle worker stays small."""
    with contextlib.suppress(OSError, AttributeError):  # AttributeError: not glibc
        ctypes.CDLL(None).malloc_trim(0)


def _start_worker(
    listener: socket.socket, compute: Callable[[SubtaskRequest], object], warm_up: Callable[[], None], recycle_rss_bytes: int
) -> int:
    service = os.getpid()
    pid = os.fork()
    if pid:
        return pid
    status = 0
    try:  # the worker: never returns into the service's code
        die_with_parent(service)
        for number in (signal.SIGTERM, signal.SIGINT):  # Ctrl-C reaches the workers too: the service decides
            signal.signal(number, _Stop.handle)
        warm_up()
        _serve_connections(listener, compute, recycle_rss_bytes)
    except BaseException:  # logged; the service starts another worker
        log.exception("worker %s failed", os.getpid())
        status = 1
    os._exit(status)


def _listen(path: Path) -> socket.socket:
    """A 0600 socket at `path`; a stale socket file left by a service that died is replaced."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise WorkerServiceUnavailable(f"SUBTASK_WORKER_SOCKET={path} exists and is not a socket; choose another path")
        try:
            check_worker_service(path, timeout_s=1.0)
        except WorkerServiceUnavailable:
            path.unlink()  # nobody answers: stale
        else:
            raise WorkerServiceUnavailable(f"SUBTASK_WORKER_SOCKET={path}: a worker service already listens there")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    previous = os.umask(0o177)  # created 0600, with no moment at a wider mode
    try:
        listener.bind(str(path))
    finally:
        os.umask(previous)
    listener.listen(64)
    return listener


def serve(
    path: Path,
    workers: int,
    *,
    compute: Callable[[SubtaskRequest], object] = write_requested_subtask,
    warm_up: Callable[[], None] = _warm_up,
    recycle_rss_bytes: int = RECYCLE_RSS_BYTES,
) -> None:
    """Run the service until SIGTERM or SIGINT: `workers` processes accept subtasks at `path`, and
    one that exits is replaced (a worker exits by itself after a subtask that left it holding more
    than `recycle_rss_bytes`). The Parquet modules load here once, before the workers fork, so
    they share those pages; polars' threads start in each worker (a fork cannot carry them)."""
    listener = _listen(path)
    # Signals received. A handler must not take a lock: it runs between any two bytecodes of this
    # thread, which may hold that lock (an Event set from one deadlocked a test's service).
    signals = 0

    def stop(number: int, frame: object) -> None:
        nonlocal signals
        signals += 1

    handlers = {number: signal.signal(number, stop) for number in (signal.SIGTERM, signal.SIGINT)}
    running: dict[int, float] = {}
    try:
        code_fingerprint()  # once, shared by the workers
        if compute is write_requested_subtask:
            build_long_lived(lambda: importlib.import_module(SUBTASK_MODULE))
        reason = fork_unavailable_reason()
        if reason is not None:
            raise WorkerServiceUnavailable(f"cannot start the workers: {reason}")
        for _ in range(workers):
            running[_start_worker(listener, compute, warm_up, recycle_rss_bytes)] = time.monotonic()
        log.info("worker service at %s: %s workers, pids %s", path, workers, sorted(running))
        while not signals:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                time.sleep(0.2)
                continue
            started = running.pop(pid, None)
            if started is None:
                continue
            failed = status != 0
            log.log(
                logging.WARNING if failed else logging.INFO,
                "worker %s %s; starting another",
                pid,
                describe_exit(status),
            )
            if failed and time.monotonic() - started < _RESTART_PAUSE_S:
                time.sleep(_RESTART_PAUSE_S)
            if not signals:
                running[_start_worker(listener, compute, warm_up, recycle_rss_bytes)] = time.monotonic()
    finally:
        path.unlink(missing_ok=True)  # no new runs: theirs write their subtasks themselves
        listener.close()
        _stop_workers(running, forced=lambda: signals > 1)
        for number, handler in handlers.items():
            signal.signal(number, handler)


def _stop_workers(running: dict[int, float], forced: Callable[[], bool]) -> None:
    """Let each worker finish the subtask in hand, for up to STOP_GRACE_S or until `forced()`; then kill."""
    for pid in running:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    if running:
        log.info(
            "worker service stopping: subtasks in hand may finish for up to %.0fs (signal again to stop at once)",
            STOP_GRACE_S,
        )
    deadline = time.monotonic() + STOP_GRACE_S
    while running and time.monotonic() < deadline and not forced():
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break  # every worker has exited
        if pid:
            running.pop(pid, None)
        else:
            time.sleep(0.05)
    for pid in running:
        log.warning("worker %s still busy; killed", pid)
        _kill(pid)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
