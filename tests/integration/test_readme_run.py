"""The README's run command on a fresh clone, as a new user starts it and looks around: Parquet and
commit-log files are in S3 within three minutes (venv set-up included; downloads come from the user
caches); the UI in a real browser tells the pipeline's story; runs launched from the UI's API for
another hour are refused; SIGTERM to `lineage dev` alone stops everything it started."""

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from botocore.exceptions import ClientError

from lineage_dagster.local_stack import LocalStack, StackConfig
from tests.browser import chromium, click_button, open_page, switch_is_on

REPO = Path(__file__).parents[2]
# Clear of the developer stack (0), the test stack (21000) and the benchmark smoke test's (17000);
# tests/unit/test_local_stack_ports.py checks it.
PORT_OFFSET = 12000
UI_PORT = PORT_OFFSET + 3000
UI = f"http://127.0.0.1:{UI_PORT}"
SCREENSHOTS = REPO / "test-output" / "ui"
REPOSITORY = {"repositoryLocationName": "lineage_dagster.definitions", "repositoryName": "__repository__"}
CHECKPOINT_ASSETS = ["checkpoint_plan", "enriched_events", "write_ahead_commit_log"]
CHECKS = ["committed_recently", "files_exist", "offsets_contiguous", "row_counts_match"]
PAST = "2024-01-01-00:00"


def readme_command(title: str) -> str:
    """The command in the README's fenced block right after the line naming `title`."""
    text = (REPO / "README.md").read_text()
    match = re.search(rf"{re.escape(title)}.*?```bash\n(.*?)```", text, re.S)
    assert match, f"README has no bash block after {title!r}"
    return next(line for line in match.group(1).splitlines() if line.strip() and not line.startswith("#"))


def graphql(query: str, **variables: object) -> dict:
    response = requests.post(f"{UI}/graphql", json={"query": query, "variables": variables}, timeout=30)
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


def wait_until(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(2)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


def process_tree(root: int) -> dict[int, str]:
    """`root` and every live descendant, with its command line."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, ppid = stat.read_text().rsplit(")", 1)[1].split()[:2]
        except (OSError, ValueError):
            continue
        if state != "Z":
            parents.setdefault(int(ppid), []).append(int(stat.parent.name))
    tree, todo = {}, [root]
    while todo:
        pid = todo.pop()
        try:
            tree[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
        todo.extend(parents.get(pid, []))
    return tree


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def port_bound(port: int) -> bool:
    return subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout.strip() != ""


@dataclass
class DevSession:
    process: subprocess.Popen
    stack: LocalStack
    log: Path
    started: float


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevSession]:
    assert not port_bound(UI_PORT), f"port {UI_PORT} is taken (a Dagster webserver left by an earlier run?)"
    tmp = tmp_path_factory.mktemp("readme-run")
    clone = tmp / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    data_dir = tmp / "stack"
    stack = LocalStack(StackConfig(data_dir=data_dir).shifted(PORT_OFFSET, data_dir))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "LINEAGE_", "VIRTUAL_ENV"))}
    # A shell where another stack's stack.env is sourced: the services must keep this stack's secret.
    env |= {"AWS_ACCESS_KEY_ID": "lineage-local", "AWS_SECRET_ACCESS_KEY": "another-stacks-secret"}
    env["LINEAGE_DEV_ARGS"] = f"--data-dir {data_dir} --port-offset {PORT_OFFSET} --port {UI_PORT} --stop-services"
    log = tmp / "run.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            ["bash", "-c", readme_command("Run everything locally")], cwd=clone, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    session = DevSession(process, stack, log, time.monotonic())
    try:
        yield session
    finally:
        if process.poll() is None:  # a test failed before the SIGTERM test: stop it the same way
            tree = process_tree(process.pid)
            process.terminate()
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                for pid in tree:
                    kill(pid)
        stack.down(grace_s=0)


def test_readme_test_command_is_what_ci_runs():
    ci = (REPO / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert readme_command("Run the tests") == ci


def test_readme_run_command_lands_files_within_three_minutes(dev: DevSession):
    found: dict[str, list[str]] = {}
    while time.monotonic() - dev.started < 180 and not (found.get("parquet") and found.get("csv")):
        assert dev.process.poll() is None, dev.log.read_text()[-3000:]
        time.sleep(3)
        if not dev.stack.status()["seaweedfs"]:
            continue
        try:
            keys = dev.stack.s3_client().list_objects_v2(Bucket="flink-data").get("Contents", [])
        except ClientError as error:  # S3 is up before `lineage dev` has created the bucket
            if error.response["Error"]["Code"] != "NoSuchBucket":
                raise
            continue
        found = {
            "parquet": [k["Key"] for k in keys if k["Key"].startswith("output/") and k["Key"].endswith(".parquet")],
            "csv": [k["Key"] for k in keys if k["Key"].startswith("write-ahead-commit-log/") and k["Key"].endswith(".csv")],
        }
    elapsed = time.monotonic() - dev.started
    assert found.get("parquet") and found.get("csv"), dev.log.read_text()[-3000:]
    assert elapsed < 180
    print(f"README run command: first Parquet and commit-log files after {elapsed:.0f}s")


def latest_commit_partition() -> str | None:
    nodes = graphql(
        """query { assetOrError(assetKey: {path: ["write_ahead_commit_log"]}) {
             ... on Asset { assetMaterializations(limit: 1) { partition } } } }"""
    )["assetOrError"]["assetMaterializations"]
    return nodes[0]["partition"] if nodes else None


def test_the_ui_tells_the_pipelines_story(dev: DevSession):
    wait_until(latest_commit_partition, 150, "a committed checkpoint in Dagster")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with chromium() as browser:

        def screenshot(name: str) -> None:
            browser.save_screenshot(str(SCREENSHOTS / f"{name}.png"))

        open_page(browser, f"{UI}/asset-groups", "lineage_input", *CHECKPOINT_ASSETS)
        screenshot("01-asset-graph")

        open_page(browser, f"{UI}/assets/checkpoint_plan", "checkpoint_id", "offset_ranges", "start_offset", "end_offset")
        screenshot("02-latest-checkpoint-plan")

        # The sensor's first evaluation of committed_recently comes within 30 s of the daemon starting.
        text = open_page(browser, f"{UI}/assets/write_ahead_commit_log?view=checks", "Checks (4)", *CHECKS, timeout_s=90)
        for check in CHECKS:
            assert re.search(rf"^{check}\nSucceeded$", text, re.M), text[:2000]
        screenshot("03-asset-checks")

        open_page(browser, f"{UI}/assets/write_ahead_commit_log", "Plots")
        click_button(browser, "Plots")
        browser.find_elements("xpath", "//button[normalize-space()='Events']")[-1].click()  # over time, per checkpoint
        open_page(browser, browser.current_url, "records", "lag_after_commit", "duration_s")
        screenshot("04-checkpoint-metadata-plots")

        open_page(browser, f"{UI}/assets/lineage_input", "Latest observation", "Plots")
        click_button(browser, "Plots")
        open_page(browser, browser.current_url, "records_waiting", "records_retained")
        screenshot("05-topic-observations")

        # Every hour a checkpoint committed in stays listed as materialized.
        partition = latest_commit_partition()
        text = open_page(browser, f"{UI}/assets/enriched_events?view=partitions", partition, "Materialized (")
        assert int(re.search(r"Materialized \((\d+)\)", text).group(1)) >= 1
        assert "Failed (0)" in text
        screenshot("06-hour-partitions")

        open_page(browser, f"{UI}/automation", "checkpoint_schedule", "catch_up_sensor", "pipeline_health_sensor")
        for automation in ("checkpoint_schedule", "catch_up_sensor", "pipeline_health_sensor"):
            assert switch_is_on(browser, automation), f"{automation} is not running"
        screenshot("07-automation-running")
    print(f"UI screenshots in {SCREENSHOTS}")


LAUNCH_RUN = """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""
LAUNCH_BACKFILL = """mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }"""
RUNS_FOR_PARTITION = """query($partition: String!) {
  runsOrError(filter: {tags: [{key: "dagster/partition", value: $partition}]}) {
    ... on Runs { results { runId status tags { key value } } } } }"""
STEP_FAILURES = """query($runId: ID!) { logsForRun(runId: $runId) { ... on EventConnection { events {
  __typename ... on ExecutionStepFailureEvent { error { message } } } } } }"""


def test_runs_for_another_hour_launched_from_the_ui_are_refused(dev: DevSession):
    """What the UI's partition picker, "Add a partition" and a backfill do, through its GraphQL API."""
    added = graphql(
        """mutation($repo: RepositorySelector!, $key: String!) { addDynamicPartition(
             repositorySelector: $repo, partitionsDefName: "checkpoint_hours", partitionKey: $key) { __typename } }""",
        repo=REPOSITORY,
        key=PAST,
    )
    assert added["addDynamicPartition"]["__typename"] == "AddDynamicPartitionSuccess"
    assets = [{"path": [key]} for key in CHECKPOINT_ASSETS]
    run = graphql(
        LAUNCH_RUN,
        params={
            "selector": {**REPOSITORY, "jobName": "__ASSET_JOB", "assetSelection": assets},
            "executionMetadata": {"tags": [{"key": "dagster/partition", "value": PAST}]},
        },
    )["launchRun"]
    assert run["__typename"] == "LaunchRunSuccess", run
    backfill = graphql(LAUNCH_BACKFILL, params={"partitionNames": [PAST], "assetSelection": assets})["launchPartitionBackfill"]
    assert backfill["__typename"] == "LaunchBackfillSuccess", backfill

    def both_finished() -> list[dict] | None:
        runs = graphql(RUNS_FOR_PARTITION, partition=PAST)["runsOrError"]["results"]
        done = [r for r in runs if r["status"] in ("SUCCESS", "FAILURE", "CANCELED")]
        return done if len(done) >= 2 and len(done) == len(runs) else None

    runs = wait_until(both_finished, 120, "the run and the backfill's run for a past partition")
    assert len(runs) == 2, "refused runs are not retried"
    assert any(t == {"key": "dagster/backfill", "value": backfill["backfillId"]} for r in runs for t in r["tags"])
    for refused in runs:
        assert refused["status"] == "FAILURE"
        events = graphql(STEP_FAILURES, runId=refused["runId"])["logsForRun"]["events"]
        messages = [e["error"]["message"] for e in events if e["__typename"] == "ExecutionStepFailureEvent"]
        assert len(messages) == 1 and f"refused: this run is for partition {PAST} but was launched in hour" in messages[0]
    keys = dev.stack.s3_client().list_objects_v2(Bucket="flink-data", Prefix="output/year=2024/").get("KeyCount", 0)
    assert keys == 0, "nothing was written into the past hour"


def test_sigterm_to_lineage_dev_alone_stops_everything_it_started(dev: DevSession):
    assert dev.process.poll() is None, dev.log.read_text()[-3000:]
    tree = process_tree(dev.process.pid)
    assert "lineage dev" in tree[dev.process.pid], "the README's command runs `lineage dev` in place of the shell"
    for part in ("lineage generate", "dagster_webserver", "dagster._daemon", "dagster code-server", "weed server", "kafka"):
        assert any(part in command for command in tree.values()), f"no {part} process in {sorted(tree.values())}"
    ports = [UI_PORT, dev.stack.config.kafka_port, dev.stack.config.s3_port]
    assert all(port_bound(port) for port in ports)

    stopping = time.monotonic()
    os.kill(dev.process.pid, signal.SIGTERM)
    dev.process.wait(45)
    stopped_after = time.monotonic() - stopping
    assert stopped_after < 30, f"lineage dev took {stopped_after:.0f}s to stop"
    left = {pid: command[:120] for pid, command in tree.items() if alive(pid)}
    for pid in left:
        kill(pid)  # so that a failure here leaves nothing behind for later tests
    assert not left, f"still running after SIGTERM: {left}"
    assert not [port for port in ports if port_bound(port)]
    print(f"lineage dev stopped {len(tree)} processes in {stopped_after:.1f}s after SIGTERM")
