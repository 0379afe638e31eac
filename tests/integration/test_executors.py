"""The executor alone decides where the steps run: the same checkpoint through `in_process`,
`multiprocess` and `celery` (two workers, as on two machines) writes identical files and commit-log
rows; a Celery worker killed mid-subtask loses nothing and commits nothing twice."""

import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from lineage_dagster.ledger.commit_log import parse_csv
from lineage_dagster.ledger.paths import plan_key
from lineage_dagster.ledger.protocol import checkpoint_ids, read_marker
from tests.celery_workers import celery_workers, instance_home
from tests.helpers import BIN, CHECKPOINT_COMMAND

PATH_SETTINGS = ("OUTPUT_PATH", "WRITE_AHEAD_COMMIT_LOG_PATH", "DROPPED_PATH")


def lake_env(lake, name: str) -> dict[str, str]:
    """The test's topic, written into S3 prefixes of their own under `name` (unique to the test)."""
    return {**lake.env, **{key: lake.env[key].replace(f"/{lake.name}/", f"/{name}/") for key in PATH_SETTINGS}}


def celery_env(lake, name: str) -> dict[str, str]:
    """`name`'s prefixes, steps on Celery, and a Dagster instance of its own on PostgreSQL."""
    database = f"d{uuid.uuid4().hex[:12]}"
    lake.stack.create_database(database)
    return {**lake_env(lake, name), **lake.stack.celery_env(database)}


def execute(env: dict[str, str], dagster_home: Path, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        CHECKPOINT_COMMAND,
        env={**env, "PATH": str(BIN), "DAGSTER_HOME": str(dagster_home), **extra},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def succeed(env: dict[str, str], dagster_home: Path, **extra: str) -> str:
    result = execute(env, dagster_home, **extra)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    return output


def written(lake, name: str) -> tuple[dict[str, bytes], list[tuple]]:
    """The data files under `name`'s output by file name, and its commit-log rows less the run id
    and commit timestamp (which differ between runs by design)."""
    output = lake.store.list_keys("flink-data", f"{name}/output/")
    files = {key.rsplit("/", 1)[1]: lake.store.get("flink-data", key) for key in output}
    logs = lake.store.list_keys("flink-data", f"{name}/write-ahead-commit-log/chk-1/subtask-")
    rows = [
        (
            row.checkpoint_id,
            row.s3_key.replace(f"/{name}/", "/"),
            row.kind,
            row.kafka_partition,
            row.start_offset,
            row.end_offset,
            row.record_count,
        )
        for key in sorted(logs)
        for row in parse_csv(lake.store.get("flink-data", key))
    ]
    return files, rows


def verify_deep(env: dict[str, str]) -> str:
    result = subprocess.run(
        [str(BIN / "lineage"), "verify", "--deep"], env={**env, "PATH": str(BIN)}, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_every_executor_writes_identical_files_and_commit_log_rows(lake, dagster_home, celery_services, tmp_path):
    lake.produce(30_000)
    names = {executor: f"{lake.name}-{executor}" for executor in ("in_process", "multiprocess", "celery")}
    succeed(lake_env(lake, names["in_process"]), dagster_home)
    multiprocess_home = tmp_path / "multiprocess-home"
    shutil.copytree(dagster_home, multiprocess_home)  # a SQLite instance of its own
    succeed(lake_env(lake, names["multiprocess"]), multiprocess_home, CHECKPOINT_EXECUTOR="multiprocess")
    env = celery_env(lake, names["celery"])
    with celery_workers(env, tmp_path) as workers:
        output = succeed(env, instance_home(tmp_path / "run-home"))
        assert all(worker.steps_done() >= 1 for worker in workers), "both workers ran steps"
    assert "Submitting celery task" in output
    assert "OK: every invariant holds" in verify_deep(env)

    files, rows = written(lake, names["in_process"])
    assert sorted(files) == ["part-00000001-0.parquet", "part-00000001-1.parquet"]
    assert sum(row[-1] for row in rows) == 30_000
    for executor in ("multiprocess", "celery"):
        assert written(lake, names[executor]) == (files, rows), f"{executor} wrote other bytes or rows than in_process"


def test_a_celery_worker_killed_mid_subtask_loses_nothing_and_commits_once(lake, celery_services, tmp_path):
    lake.produce(20_000)
    env = celery_env(lake, lake.name)
    once = tmp_path / "fault-fired"
    # The first worker to write subtask 0 holds there until it is killed; a task whose worker
    # vanished goes back to the queue after the visibility timeout.
    worker_env = {**env, "LINEAGE_FAULT": f"during_write:sleep=120:{once}", "CELERY_VISIBILITY_TIMEOUT_S": "10"}
    with celery_workers(worker_env, tmp_path) as workers:
        run = subprocess.Popen(
            CHECKPOINT_COMMAND,
            env={**env, "PATH": str(BIN), "DAGSTER_HOME": str(instance_home(tmp_path / "run-home"))},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            wait_for_file(once, run)
            holder = next(w for w in workers if str(once.read_text()) in subprocess_tree(w.process.pid))
            holder.kill_9()
            output, _ = run.communicate(timeout=240)
        finally:
            if run.poll() is None:
                run.kill()
        survivor = next(w for w in workers if w is not holder)
    assert run.returncode == 0, output[-6000:]
    assert "subtask=0 wrote 10000 records" in survivor.log, "the killed worker's subtask ran again on the other"
    log = lake.commit_log
    assert checkpoint_ids(lake.store, log) == [1]
    assert read_marker(lake.store, log, 1).record_count == 20_000

    lake.produce(5_000)
    with celery_workers(env, tmp_path / "next") as workers:
        succeed(env, tmp_path / "run-home")
    assert read_marker(lake.store, log, 2).record_count == 5_000
    report = verify_deep(env)
    assert "checkpoints 2, records 25000" in report and "OK: every invariant holds" in report


def test_celery_without_a_reachable_broker_fails_before_anything_is_written(lake, dagster_home):
    result = execute(lake.env, dagster_home, CHECKPOINT_EXECUTOR="celery", CELERY_BROKER_URL="redis://127.0.0.1:1/0")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "cannot reach the Celery broker at redis://127.0.0.1:1/0" in output and "CELERY_BROKER_URL" in output, output[-3000:]
    assert lake.store.get(lake.commit_log.bucket, plan_key(lake.commit_log, 1)) is None


OTHER_SETTINGS = {"KAFKA_TOPIC": "{name}-other", "OUTPUT_PATH": "s3://flink-data/{name}/elsewhere", "PARALLELISM": "3"}


@pytest.mark.parametrize("setting", sorted(OTHER_SETTINGS))
def test_a_worker_configured_apart_from_the_code_location_writes_nothing(lake, celery_services, tmp_path, setting):
    lake.produce(2_000)
    env = celery_env(lake, lake.name)
    other = OTHER_SETTINGS[setting].format(name=lake.name)
    # One worker only: it runs every step, the plan step included.
    with celery_workers({**env, setting: other}, tmp_path, count=1):
        result = execute(env, instance_home(tmp_path / "run-home"))
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"{setting}={other!r} here but" in output and "must share them" in output, output[-6000:]
    assert not lake.store.list_keys("flink-data", f"{lake.name}/output/")
    assert not lake.store.list_keys("flink-data", f"{lake.name}/elsewhere/")
    assert not lake.store.list_keys("flink-data", f"{lake.name}/write-ahead-commit-log/chk-"), "not even a plan"


def wait_for_file(path: Path, process: subprocess.Popen, timeout_s: float = 120) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while not path.exists() or not path.read_text():
        assert process.poll() is None, f"the run exited with {process.returncode} first:\n{process.stdout.read()[-3000:]}"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.2)


def subprocess_tree(pid: int) -> set[str]:
    """`pid` and its descendants' ids, as strings."""
    found, frontier = {str(pid)}, [str(pid)]
    while frontier:
        children = Path(f"/proc/{frontier.pop()}/task")
        for task in children.iterdir() if children.exists() else ():
            kids = (task / "children").read_text().split() if (task / "children").exists() else []
            found.update(kids)
            frontier.extend(kids)
    return found
