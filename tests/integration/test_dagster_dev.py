"""The real daemon: under `dagster dev` (webserver + daemon) the catch-up sensor and the schedule
commit checkpoints one after the other; a run killed with -9 while it writes a subtask is detected
by run monitoring and retried; the webserver's GraphQL API shows the assets and the checkpoint
metadata. `dg dev`,
today's command, serves the project with no arguments."""

import itertools
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import requests
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from lineage_dagster.ledger.verify import committed_checkpoints, verify_ledger
from tests.helpers import BIN

UI_PORT = 23000
DG_DEV_PORT = 23001
REPO = Path(__file__).parents[2]

LATEST_COMMIT = """
query {
  assetOrError(assetKey: {path: ["write_ahead_commit_log"]}) {
    ... on Asset {
      assetMaterializations(limit: 1) {
        runId
        partition
        metadataEntries { label ... on IntMetadataEntry { intValue } }
      }
    }
  }
}
"""


def graphql(query: str, port: int = UI_PORT) -> dict:
    response = requests.post(f"http://127.0.0.1:{port}/graphql", json={"query": query}, timeout=30)
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


def wait_for(predicate, timeout_s: float, what: str, process: subprocess.Popen):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, f"dagster dev exited with {process.returncode}"
        value = predicate()
        if value:
            return value
        time.sleep(2)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


def webserver_up(port: int = UI_PORT) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/server_info", timeout=2).ok
    except requests.ConnectionError:
        return False


def stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def test_dg_dev_serves_the_project_with_no_arguments(lake, dagster_home, tmp_path):
    log = (tmp_path / "dg-dev.log").open("w")
    dev = subprocess.Popen(
        [str(BIN / "dg"), "dev", "-h", "127.0.0.1", "-p", str(DG_DEV_PORT)],
        cwd=REPO,
        env={**lake.env, "PATH": f"{BIN}:{os.environ['PATH']}", "DAGSTER_HOME": str(dagster_home)},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(lambda: webserver_up(DG_DEV_PORT), 120, "dg dev's webserver", dev)
        location = graphql(
            """{ repositoriesOrError { ... on RepositoryConnection { nodes {
                 jobs { name } schedules { name } sensors { name } assetNodes { assetKey { path } } } } } }""",
            DG_DEV_PORT,
        )["repositoriesOrError"]["nodes"][0]
    finally:
        stop(dev)
        log.close()
    assert "checkpoint_job" in {job["name"] for job in location["jobs"]}
    assert [s["name"] for s in location["schedules"]] == ["checkpoint_schedule"]
    assert {s["name"] for s in location["sensors"]} == {"catch_up_sensor", "pipeline_health_sensor"}
    assert {"/".join(a["assetKey"]["path"]) for a in location["assetNodes"]} == {
        "lineage_input",
        "checkpoint_plan",
        "enriched_events",
        "write_ahead_commit_log",
    }


def test_the_daemon_commits_consecutive_checkpoints_and_ui_shows_them(lake, dagster_home, tmp_path):
    # The first run, a process the daemon launched, dies with kill -9 while it writes. The backlog
    # is over two capped checkpoints, so the catch-up sensor launches them back to back.
    backlog, cap = 50_000, 20_000
    lake.produce(backlog)
    stop_producing = threading.Event()

    def trickle():
        while not stop_producing.is_set():
            lake.produce(100, rate=200.0)

    producer = threading.Thread(target=trickle)
    producer.start()
    log = (tmp_path / "dagster-dev.log").open("w")
    dev = subprocess.Popen(
        [str(BIN / "dagster"), "dev", "-m", "lineage_dagster.definitions", "-h", "127.0.0.1", "-p", str(UI_PORT)],
        env={
            **lake.env,
            "PATH": f"{BIN}:{os.environ['PATH']}",
            "DAGSTER_HOME": str(dagster_home),
            # The first run dies with kill -9 in its first subtask step; later runs pass.
            "LINEAGE_FAULT": f"during_write:kill:{tmp_path / 'killed-once'}",
            "MAX_RECORDS_PER_CHECKPOINT": str(cap),
        },
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(webserver_up, 120, "the webserver", dev)
        names = {"/".join(node["assetKey"]["path"]) for node in graphql("{ assetNodes { assetKey { path } } }")["assetNodes"]}
        assert {"lineage_input", "checkpoint_plan", "enriched_events", "write_ahead_commit_log"} <= names

        def two_committed():
            markers, _ = committed_checkpoints(lake.store, lake.commit_log)
            return markers if len(markers) >= 2 else None

        markers = wait_for(two_committed, 300, "two scheduled checkpoints after a killed run", dev)
        assert [m.checkpoint_id for m in markers[:2]] == [1, 2]
        assert {r.partition: r.start for r in markers[1].ranges} == markers[0].end_offsets()

        latest = wait_for(
            lambda: graphql(LATEST_COMMIT)["assetOrError"]["assetMaterializations"], 30, "commit-log materialization", dev
        )[0]
        entries = {e["label"]: e.get("intValue") for e in latest["metadataEntries"]}
        assert entries["checkpoint_id"] in {m.checkpoint_id for m in markers}
        assert latest["partition"], "scheduled runs are partitioned by hour"

        # A run writes its commit marker before its last step ends: stopping `dagster dev` as soon as the
        # markers exist can interrupt the second run, so wait for Dagster to record both runs as finished.
        instance = DagsterInstance.from_config(str(dagster_home))

        def two_succeeded():
            done = instance.get_run_records(RunsFilter(job_name="checkpoint_job", statuses=[DagsterRunStatus.SUCCESS]))
            return len(done) >= 2

        wait_for(two_succeeded, 120, "two successful checkpoint runs", dev)
    finally:
        stop_producing.set()
        producer.join()
        stop(dev)
        log.close()

    records = instance.get_run_records(RunsFilter(job_name="checkpoint_job"), ascending=True)
    assert (tmp_path / "killed-once").exists(), "the first run was killed"
    killed = records[0].dagster_run
    assert killed.status == DagsterRunStatus.FAILURE, "run monitoring marked the killed run failed"
    assert any(r.dagster_run.tags.get("dagster/parent_run_id") == killed.run_id for r in records), "it was retried"
    killed_log = "\n".join(entry.user_message for entry in instance.all_logs(killed.run_id))
    assert "checkpoint_id=1 planned" in killed_log and "subtask=0 wrote" not in killed_log, "died in its first subtask step"
    assert markers[0].record_count == cap
    finished = [r for r in records if r.dagster_run.status == DagsterRunStatus.SUCCESS]
    assert len(finished) >= 2
    for before, after in itertools.pairwise(finished):
        assert after.start_time >= before.end_time, "checkpoint runs never overlap"
    assert all(r.dagster_run.tags.get("lineage/checkpoint_id") for r in finished)
    report = verify_ledger(lake.store, lake.commit_log, [lake.output, lake.dropped], deep=True)
    assert report.ok, report.violations
    assert report.rows_read == report.records >= 2 * cap
