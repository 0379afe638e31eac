"""The README's run command on a fresh clone, as a new user starts it: Parquet and commit-log files
are in S3 within three minutes (venv set-up included; downloads come from the user caches), even
from a shell that has other AWS credentials set."""

import os
import re
import signal
import subprocess
import time
from pathlib import Path

from botocore.exceptions import ClientError

from lineage_dagster.local_stack import LocalStack, StackConfig

REPO = Path(__file__).parents[2]
# Clear of the developer stack (0), the test stack (21000) and the benchmark smoke test's (17000);
# tests/unit/test_local_stack_ports.py checks it.
PORT_OFFSET = 12000
UI_PORT = PORT_OFFSET + 3000


def readme_command(title: str) -> str:
    """The command in the README's fenced block right after the line naming `title`."""
    text = (REPO / "README.md").read_text()
    match = re.search(rf"{re.escape(title)}.*?```bash\n(.*?)```", text, re.S)
    assert match, f"README has no bash block after {title!r}"
    return next(line for line in match.group(1).splitlines() if line.strip() and not line.startswith("#"))


def test_readme_test_command_is_what_ci_runs():
    ci = (REPO / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert readme_command("Run the tests") == ci


def test_readme_run_command_lands_files_within_three_minutes(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    data_dir = tmp_path / "stack"
    stack = LocalStack(StackConfig(data_dir=data_dir).shifted(PORT_OFFSET, data_dir))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "LINEAGE_", "VIRTUAL_ENV"))}
    # A shell where another stack's stack.env is sourced: the services must keep this stack's secret.
    env |= {"AWS_ACCESS_KEY_ID": "lineage-local", "AWS_SECRET_ACCESS_KEY": "another-stacks-secret"}
    env["LINEAGE_DEV_ARGS"] = f"--data-dir {data_dir} --port-offset {PORT_OFFSET} --port {UI_PORT} --stop-services"
    started = time.monotonic()
    log = (tmp_path / "run.log").open("w")
    process = subprocess.Popen(
        ["bash", "-c", readme_command("Run everything locally")],
        cwd=clone,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    found: dict[str, list[str]] = {}
    try:
        while time.monotonic() - started < 180 and not (found.get("parquet") and found.get("csv")):
            assert process.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
            time.sleep(3)
            if not stack.status()["seaweedfs"]:
                continue
            try:
                keys = stack.s3_client().list_objects_v2(Bucket="flink-data").get("Contents", [])
            except ClientError as error:  # S3 is up before `lineage dev` has created the bucket
                if error.response["Error"]["Code"] != "NoSuchBucket":
                    raise
                continue
            found = {
                "parquet": [k["Key"] for k in keys if k["Key"].startswith("output/") and k["Key"].endswith(".parquet")],
                "csv": [k["Key"] for k in keys if k["Key"].startswith("write-ahead-commit-log/") and k["Key"].endswith(".csv")],
            }
        elapsed = time.monotonic() - started
    finally:
        try:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGINT)
                try:
                    process.wait(90)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
        finally:
            stack.down()
            log.close()
    output = (tmp_path / "run.log").read_text()
    assert found.get("parquet") and found.get("csv"), output[-3000:]
    assert elapsed < 180
    print(f"README run command: first Parquet and commit-log files after {elapsed:.0f}s")
