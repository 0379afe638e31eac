"""The benchmark's own measures: the split of a checkpoint window's CPU from cumulative tick
samples, and a command's peak memory."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("benchmark_run", Path(__file__).parents[2] / "benchmarks" / "run.py")
bench = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)  # its dataclasses look it up
_spec.loader.exec_module(bench)


def _ticks(seconds: float) -> int:
    return round(seconds / bench.TICK_S)


# Machine busy, run process, its waited-for workers, the worker service, Kafka, SeaweedFS:
# cumulative, as sampled.
TIMELINE = [
    bench.CpuSample(100.0, (0, 0, 0, 0, 0, 0)),
    bench.CpuSample(101.0, (_ticks(1.0), _ticks(0.5), 0, _ticks(0.2), _ticks(0.1), _ticks(0.1))),
    bench.CpuSample(102.0, (_ticks(3.5), _ticks(0.6), _ticks(2.0), _ticks(0.4), _ticks(0.2), _ticks(0.1))),
]


def test_a_window_between_samples_is_interpolated_and_split_by_part():
    used = bench.window_cpu(TIMELINE, 100.5, 101.5)
    assert used == pytest.approx(
        {
            "machine": 1.75,
            "run process": 0.3,
            "forked workers": 1.0,
            "worker service": 0.2,
            "Kafka": 0.1,
            "SeaweedFS": 0.05,
            "other": 0.1,
        }
    )


def test_a_window_the_samples_do_not_cover_has_no_figures():
    assert bench.window_cpu(TIMELINE, 99.0, 101.0) is None
    assert bench.window_cpu(TIMELINE, 101.0, 102.5) is None


def test_a_commands_peak_memory_is_its_own_not_this_process_high_water_mark():
    held = b"\x01" * (400 << 20)  # this process's high-water mark goes past 400 MiB
    del held
    small = bench.timed_process([sys.executable, "-c", "pass"], env={})
    large = bench.timed_process([sys.executable, "-c", "import time; x = b'1' * (300 << 20); time.sleep(0.5)"], env={})
    assert small.peak_rss_mib < 100
    assert 300 <= large.peak_rss_mib < 400
    assert 300 <= large.peak_pss_mib < 400


def test_pages_a_worker_shares_with_its_parent_count_once_in_the_pss_figure():
    shared = "import os, time; x = b'1' * (300 << 20)\nif os.fork() == 0: time.sleep(1); os._exit(0)\ntime.sleep(1); os.wait()"
    run = bench.timed_process([sys.executable, "-c", shared], env={})
    assert run.peak_rss_mib >= 600, "RSS summed counts the shared pages in both processes"
    assert 300 <= run.peak_pss_mib < 450


def test_what_a_worker_service_spends_during_a_command_counts_as_the_commands():
    busy = "import time; end = time.process_time() + 0.4\nwhile time.process_time() < end: pass\ntime.sleep(30)"
    service = subprocess.Popen([sys.executable, "-c", busy])
    try:
        run = bench.timed_process([sys.executable, "-c", "import time; time.sleep(1.0)"], env={}, worker_service=(service.pid,))
    finally:
        service.kill()
        service.wait()
    assert run.cpu_s >= 0.3, "the service's CPU while the command ran"
