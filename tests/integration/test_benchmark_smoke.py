"""A tiny run of the benchmark script, so it keeps working between the runs kept in docs/benchmarks.md."""

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).parents[2]
# Its own stack, clear of the test stack (21000) and the README run's (12000);
# tests/unit/test_local_stack_ports.py checks it.
PORT_OFFSET = 17000
# Not under pytest's private temp folder: PostgreSQL runs as another user, who must reach its data.
DATA_DIR = Path("/tmp/lineage-dagster-bench-smoke")
PER_EXECUTOR = ("in-run", "by CLI", "CPU", "memory")
FIGURES = {"raw consume", "decode stage", "trivial Dagster job"} | {
    f"{executor}: {figure}" for executor in ("in_process", "multiprocess", "celery") for figure in PER_EXECUTOR
}


def test_benchmark_prints_every_figure_of_a_small_run():
    shutil.rmtree(DATA_DIR, ignore_errors=True)
    command = [sys.executable, "benchmarks/run.py", "--records", "5000", "--rounds", "1", "--port-offset", str(PORT_OFFSET)]
    try:
        result = subprocess.run(
            [*command, "--data-dir", str(DATA_DIR)], cwd=REPO, capture_output=True, text=True, timeout=900, check=False
        )
    finally:
        shutil.rmtree(DATA_DIR, ignore_errors=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = {
        cells[0].strip(): cells
        for cells in (line.split("|")[1:-1] for line in result.stdout.splitlines() if line.startswith("| "))
    }
    assert set(rows) == FIGURES | {"figure"}, result.stdout[-3000:]
    for executor in ("in_process", "multiprocess", "celery"):
        in_run = rows[f"{executor}: in-run"]
        assert "median of 1 x 5,000" in in_run[1] and "x paired raw" in in_run[3], in_run
        assert "CPU-s per 1M records" in rows[f"{executor}: CPU"][1]
        assert "MiB peak PSS" in rows[f"{executor}: memory"][1]
        assert "s after its inputs" in rows[f"{executor}: memory"][3]
    assert "cores, Python" in result.stdout


def test_benchmark_refuses_zero_rounds_before_starting_services(tmp_path):
    command = [sys.executable, "benchmarks/run.py", "--rounds", "0", "--data-dir", str(tmp_path / "stack")]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2 and "--rounds must be at least 1" in result.stderr, result.stderr[-2000:]
    assert not (tmp_path / "stack").exists()
