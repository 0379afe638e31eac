"""Python's cyclic garbage collector around the few places where it costs more than it saves."""

from __future__ import annotations

import atexit
import gc
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")

_gc_pause_lock = threading.Lock()
_gc_pauses = 0
_gc_was_enabled = True


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Reading creates about a million short-lived, acyclic objects a second (Kafka messages,
    payloads). Reference counting frees them, but the cyclic collector also walks every live
    object of the process each time, and in a Dagster run process that doubled the CPU cost of
    reading. Paused for reads and imports only; overlapping pauses (threads) are counted."""
    global _gc_pauses, _gc_was_enabled
    with _gc_pause_lock:
        if _gc_pauses == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_pause_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_was_enabled:
                gc.enable()


def build_long_lived(build: Callable[[], T]) -> T:
    """`build()` for objects that live as long as the process (a module's import, a boto3 client),
    which allocate tens of thousands of objects at once. Unpaused, that set off a full collection
    of everything Dagster had loaded (0.14-0.25 s each in a run process here). So the collector is
    paused while building and everything alive afterwards is frozen: later collections skip it, and
    forked workers share its pages. Call it once per object per process: each freeze also keeps
    whatever garbage the process then holds until it exits."""
    with cyclic_gc_paused():
        built = build()
    gc.freeze()
    return built


_exit_collection_skipped = False


def skip_cyclic_gc_at_exit() -> None:
    """A run's process exits once the run is done, and Python's last garbage collections then walk
    every object Dagster loaded only to free memory the OS takes back anyway: 0.4-0.9 s of a
    checkpoint run here. Frozen objects are skipped by those collections; atexit handlers (logging's
    flush among them) still run, and until exit the collector works as before."""
    global _exit_collection_skipped
    if not _exit_collection_skipped:
        _exit_collection_skipped = True
        atexit.register(gc.freeze)
