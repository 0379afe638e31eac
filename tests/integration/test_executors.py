"""Output is the same whichever executor runs the steps; only the in-process one reads ahead (or,
by default, forks subtask workers: tests/integration/test_faults.py compares those)."""

import shutil
import subprocess
from pathlib import Path

from tests.conftest import BIN, run_checkpoint_cli

READ_AHEAD = "reads started during the previous step"
PATH_SETTINGS = ("OUTPUT_PATH", "WRITE_AHEAD_COMMIT_LOG_PATH", "DROPPED_PATH")


def data_files(lake, prefix: str) -> dict[str, bytes]:
    """Data files under an output prefix by file name (the hour folder is the run's own hour)."""
    keys = lake.store.list_keys("flink-data", f"{prefix}/")
    return {key.rsplit("/", 1)[1]: lake.store.get("flink-data", key) for key in keys if key.endswith(".parquet")}


def test_multiprocess_executor_writes_identical_files_without_reading_ahead(lake, dagster_home, tmp_path):
    lake.produce(3000)
    in_process = run_checkpoint_cli(lake, dagster_home, SUBTASK_WORKERS="0")
    output = in_process.stdout + in_process.stderr
    assert in_process.returncode == 0, output[-6000:]
    assert output.count(READ_AHEAD) == 2, output[-6000:]

    # The same records again, into other prefixes with a fresh Dagster instance, one process per step.
    other = f"{lake.name}-multiprocess"
    env = {
        **lake.env,
        "PATH": str(BIN),
        "DAGSTER_HOME": str(tmp_path / "multiprocess-home"),
        **{name: lake.env[name].replace(f"/{lake.name}/", f"/{other}/") for name in PATH_SETTINGS},
    }
    shutil.copytree(dagster_home, env["DAGSTER_HOME"])
    shutil.rmtree(Path(env["DAGSTER_HOME"]) / "storage", ignore_errors=True)
    definitions = Path(__file__).with_name("multiprocess_definitions.py")
    multiprocess = subprocess.run(
        [str(BIN / "dagster"), "job", "execute", "-f", str(definitions), "-j", "checkpoint_job"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = multiprocess.stdout + multiprocess.stderr
    assert multiprocess.returncode == 0, output[-6000:]
    assert "wrote 1500 records" in output and READ_AHEAD not in output, output[-6000:]
    assert "without worker processes: the subtask steps run in processes of their own" in output, output[-6000:]

    mine, theirs = data_files(lake, f"{lake.name}/output"), data_files(lake, f"{other}/output")
    assert sorted(mine) == ["part-00000001-0.parquet", "part-00000001-1.parquet"]
    assert mine == theirs
