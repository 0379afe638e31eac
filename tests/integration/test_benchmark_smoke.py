"""A tiny run of the benchmark script, so it keeps working between the runs kept in docs/benchmarks.md."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).parents[2]
# Its own stack, clear of the test stack (21000) and the README run's (12000);
# tests/unit/test_local_stack_ports.py checks it.
PORT_OFFSET = 17000
FIGURES = {
    "raw consume",
    "decode stage",
    "pipeline rate",
    "raw consume, paired",
    "pipeline, forked workers",
    "CPU of the 1M window",
    "CPU of its raw read",
    "pipeline bound by CPU",
    "data path, warm process",
    "run with data, fixed",
    "records in a fresh run",
    "checkpoint by CLI",
    "empty checkpoint",
    "memory, 1M checkpoint",
}


def test_benchmark_prints_every_figure_of_a_small_run(tmp_path):
    command = [sys.executable, "benchmarks/run.py", "--records", "5000", "--rounds", "1", "--port-offset", str(PORT_OFFSET)]
    result = subprocess.run(
        [*command, "--data-dir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = [line.split("|")[1:-1] for line in result.stdout.splitlines() if line.startswith("| ")]
    assert {cells[0].strip() for cells in rows} == FIGURES | {"figure"}, result.stdout[-3000:]
    pipeline = next(cells for cells in rows if cells[0].strip() == "pipeline rate")
    assert "x raw" in pipeline[3] and "/CPU-s" in pipeline[3] and "median of 1 x 5,000" in pipeline[1]
    window = next(cells for cells in rows if cells[0].strip() == "CPU of the 1M window")
    assert "core-s in" in window[1] and "run process" in window[3] and "worker service" in window[3], window
    bound = next(cells for cells in rows if cells[0].strip() == "pipeline bound by CPU")
    assert "x paired raw" in bound[3], bound
    assert "cores, Python" in result.stdout and "steps of the median" in result.stdout


def test_benchmark_refuses_zero_rounds_before_starting_services(tmp_path):
    command = [sys.executable, "benchmarks/run.py", "--rounds", "0", "--data-dir", str(tmp_path / "stack")]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 2 and "--rounds must be at least 1" in result.stderr, result.stderr[-2000:]
    assert not (tmp_path / "stack").exists()
