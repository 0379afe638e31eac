"""The benchmark's own measures: a command's CPU, wherever its work runs, and its peak memory."""

import importlib.util
import subprocess
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location("benchmark_run", Path(__file__).parents[2] / "benchmarks" / "run.py")
bench = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)  # its dataclasses look it up
_spec.loader.exec_module(bench)

BURN = "import time\nend = time.process_time() + {seconds}\nwhile time.process_time() < end: pass\n"


def test_a_commands_peak_memory_is_its_own_not_this_process_high_water_mark():
    held = b"\x01" * (400 << 20)  # this process's high-water mark goes past 400 MiB
    del held
    small = bench.measure([sys.executable, "-c", "pass"], env={})
    large = bench.measure([sys.executable, "-c", "import time; x = b'1' * (300 << 20); time.sleep(0.6)"], env={})
    assert small.peak_pss_mib < 100
    assert 300 <= large.peak_pss_mib < 400


def test_pages_a_child_shares_with_its_parent_count_once():
    shared = "import os, time; x = b'1' * (300 << 20)\nif os.fork() == 0: time.sleep(1); os._exit(0)\ntime.sleep(1); os.wait()"
    run = bench.measure([sys.executable, "-c", shared], env={})
    assert 300 <= run.peak_pss_mib < 450


def test_cpu_of_processes_the_command_does_not_wait_for_counts_and_excluded_services_do_not():
    service = subprocess.Popen([sys.executable, "-c", BURN.format(seconds=0.6) + "time.sleep(30)"])
    # The command starts a process in a session of its own and exits without waiting for it, as
    # a forkserver's step processes and Celery workers run apart from the run that uses them.
    burn = BURN.format(seconds=0.5)
    start = f"subprocess.Popen([sys.executable, '-c', {burn!r}], start_new_session=True)"
    orphan = f"import subprocess, sys, time\n{start}\ntime.sleep(1.5)"
    try:
        run = bench.measure([sys.executable, "-c", orphan], env={}, excluded=[service.pid])
    finally:
        service.kill()
        service.wait()
    assert 0.45 <= run.cpu_s < 1.0, run.cpu_s
