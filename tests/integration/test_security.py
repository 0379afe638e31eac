"""Against a Kafka that requires SASL_SSL (SCRAM-SHA-512, the user created by Kafka's storage tool)
and S3 over HTTPS, both certified by a CA the test stack creates: a checkpoint commits every record
once; each misconfiguration fails within seconds, before anything is written, naming the setting to
fix; and no secret appears in the run's logs, Dagster's storage, the UI's GraphQL answers or S3."""

import os
import subprocess
import time
from pathlib import Path

import certifi
import pytest
import requests
from dagster import DagsterInstance

from lineage_dagster.clients.kafka import KafkaAccessError, KafkaRecordSource
from lineage_dagster.ledger.protocol import read_marker, read_plan
from tests.helpers import BIN, run_checkpoint_cli

UI_PORT = 23002
GRAPHQL_RUNS = """{ runsOrError { ... on Runs { results { runId status runConfigYaml tags { key value } } } } }"""
GRAPHQL_LOGS = """query($runId: ID!) { logsForRun(runId: $runId) { ... on EventConnection { events {
  __typename ... on MessageEvent { message } ... on ExecutionStepFailureEvent { error { message } } } } } }"""


def lineage(lake, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "lineage"), *args], env={**(env or lake.env), "PATH": str(BIN)}, capture_output=True, text=True, timeout=120
    )


def graphql_answers(dagster_home: Path, env: dict[str, str], run_ids: list[str]) -> str:
    """What the UI's GraphQL API says about the runs, as the webserver serves it."""
    webserver = subprocess.Popen(
        [str(BIN / "dagster-webserver"), "-m", "lineage_dagster.definitions", "-h", "127.0.0.1", "-p", str(UI_PORT)],
        env={**env, "PATH": f"{BIN}:{os.environ['PATH']}", "DAGSTER_HOME": str(dagster_home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                requests.get(f"http://127.0.0.1:{UI_PORT}/server_info", timeout=2).raise_for_status()
                break
            except requests.RequestException:
                assert time.monotonic() < deadline and webserver.poll() is None, "the webserver did not start"
                time.sleep(1)
        url = f"http://127.0.0.1:{UI_PORT}/graphql"
        answers = [requests.post(url, json={"query": GRAPHQL_RUNS}, timeout=30).text]
        answers += [
            requests.post(url, json={"query": GRAPHQL_LOGS, "variables": {"runId": run_id}}, timeout=30).text
            for run_id in run_ids
        ]
    finally:
        webserver.terminate()
        webserver.wait(30)
    assert all(run_id in answers[0] for run_id in run_ids)
    return "\n".join(answers)


def test_a_checkpoint_over_sasl_ssl_and_https_commits_once_and_no_secret_leaks(secured_lake, dagster_home):
    lake = secured_lake
    password, aws_secret = lake.env["KAFKA_SASL_PASSWORD"], lake.env["AWS_SECRET_ACCESS_KEY"]
    produced = lineage(lake, "generate", "--count", "3000")
    assert produced.returncode == 0, produced.stderr[-2000:]

    committed = run_checkpoint_cli(lake, dagster_home)
    assert committed.returncode == 0, (committed.stdout + committed.stderr)[-4000:]
    lineage(lake, "generate", "--count", "10")
    started = time.monotonic()
    refused = run_checkpoint_cli(lake, dagster_home, KAFKA_SASL_PASSWORD=password + "-wrong")
    refusal = refused.stdout + refused.stderr
    assert refused.returncode != 0 and time.monotonic() - started < 30
    assert "refused the SASL login" in refusal and "check KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD" in refusal, refusal[-3000:]
    assert "rdkafka#" not in refusal and refusal.count("\n") < 400, "librdkafka's repeated errors are not dumped"
    assert read_plan(lake.store, lake.commit_log, 2) is None, "the refused run wrote nothing"

    assert read_marker(lake.store, lake.commit_log, 1).record_count == 3000
    verified = lineage(lake, "verify", "--deep")
    assert verified.returncode == 0 and "checkpoints 1, records 3000" in verified.stdout, verified.stdout + verified.stderr
    assert "3000" in lineage(lake, "checkpoints").stdout

    instance = DagsterInstance.from_config(str(dagster_home))
    runs = instance.get_runs()
    assert len(runs) == 2
    seen = [committed.stdout, committed.stderr, refused.stdout, refused.stderr, verified.stdout, produced.stdout]
    for run in runs:
        seen += [str(run.run_config), str(run.tags), *(str(entry) for entry in instance.all_logs(run.run_id))]
    seen.append(graphql_answers(dagster_home, lake.env, [run.run_id for run in runs]))
    stored = [path.read_bytes() for path in dagster_home.rglob("*") if path.is_file()]
    objects = [lake.store.get("flink-data", key) for key in lake.store.list_keys("flink-data", f"{lake.name}/")]
    assert len(stored) > 5 and len(objects) >= 4
    for secret in (password, aws_secret):
        assert not [text for text in seen if secret in text], "a secret in run output, logs, run config or GraphQL"
        assert not [blob for blob in stored + objects if secret.encode() in blob], "a secret in DAGSTER_HOME or S3"


@pytest.mark.parametrize(
    ("change", "names"),
    [
        ({"sasl.password": "not-the-password"}, "refused the SASL login"),
        ({"sasl.mechanism": "SCRAM-SHA-256"}, "check KAFKA_SASL_MECHANISM"),
        ({"ssl.ca.location": None}, "check KAFKA_SSL_CA_LOCATION"),
        ({"security.protocol": "PLAINTEXT"}, "check KAFKA_SECURITY_PROTOCOL (PLAINTEXT: SSL or SASL_SSL?)"),
    ],
)
def test_each_kafka_misconfiguration_fails_fast_naming_the_setting(secured_lake, change, names):
    config = {k: v for k, v in {**secured_lake.client_config, **change}.items() if v is not None}
    started = time.monotonic()
    with pytest.raises(KafkaAccessError) as refused:
        KafkaRecordSource(config, secured_lake.name).watermarks()
    assert time.monotonic() - started < 30
    assert names in str(refused.value)


def test_a_run_refused_by_s3s_certificate_says_why_and_writes_nothing(secured_lake, dagster_home):
    lake = secured_lake
    lineage(lake, "generate", "--count", "100")
    for override, names in (  # Public CAs only: the stack's CA is not among them.
        ({"AWS_CA_BUNDLE": certifi.where()}, "cannot verify the TLS certificate of S3 at https://127.0.0.1"),
        ({"AWS_CA_BUNDLE": "/nonexistent/ca.pem"}, "check AWS_CA_BUNDLE"),
    ):
        started = time.monotonic()
        result = run_checkpoint_cli(lake, dagster_home, **override)
        output = result.stdout + result.stderr
        assert result.returncode != 0
        assert time.monotonic() - started < 30
        assert names in output, output[-3000:]
        assert "rdkafka#" not in output and output.count("\n") < 400, "librdkafka's repeated errors are not dumped"
    assert lake.store.list_keys("flink-data", f"{lake.name}/") == {}
