"""End to end as a user runs it: `dagster job execute` in a subprocess, then every file read back
from S3 and checked against the output contract, independently of the product's own verifier."""

import io
import itertools
import json
import re
import subprocess
import threading

import polars as pl

from lineage_dagster.ledger.commit_log import parse_csv
from lineage_dagster.ledger.protocol import read_marker
from tests.helpers import BIN, CHECKPOINT_COMMAND, run_checkpoint_cli

DG_LAUNCH_COMMAND = [str(BIN / "dg"), "launch", "--job", "checkpoint_job"]

CONTRACT_SCHEMA = {
    "uuid": pl.String,
    "timestamp": pl.Int64,
    "kafka_topic": pl.String,
    "kafka_partition": pl.Int32,
    "kafka_offset": pl.Int64,
    "checkpoint_id": pl.Int64,
}


def test_three_checkpoints_while_producing(lake, dagster_home):
    lake.produce(20_000)
    # ~20 s of trickle, so the three checkpoints (~7 s each) all run while records arrive.
    more = threading.Thread(target=lake.produce, args=(4_000,), kwargs={"rate": 200.0})
    more.start()
    # Today's Dagster CLI and the older one run the same job: `dg launch` takes the middle checkpoint.
    for command in (CHECKPOINT_COMMAND, DG_LAUNCH_COMMAND, CHECKPOINT_COMMAND):
        result = run_checkpoint_cli(lake, dagster_home, command=command)
        output = result.stdout + result.stderr
        assert result.returncode == 0, output[-6000:]
        for check in ("offsets_contiguous", "files_exist", "row_counts_match"):  # read back from S3
            assert f"Asset check '{check}' on 'write_ahead_commit_log' passed" in output, output[-6000:]
    more.join()

    bucket = "flink-data"
    log = lake.commit_log
    markers = [read_marker(lake.store, log, n) for n in (1, 2, 3)]
    assert all(markers), "three committed checkpoints"
    assert read_marker(lake.store, log, 4) is None
    for before, after in itertools.pairwise(markers):
        assert {r.partition: r.start for r in after.ranges} == before.end_offsets()
    committed = sum(m.record_count for m in markers)
    assert committed >= 20_000

    output_keys = lake.store.list_keys(bucket, f"{lake.name}/output/")
    layout = re.compile(rf"^{lake.name}/output/year=\d{{4}}/month=\d\d/day=\d\d/hour=\d\d/part-\d{{8}}-\d+\.parquet$")
    assert output_keys and all(layout.match(key) for key in output_keys), sorted(output_keys)

    frames = []
    for key in output_keys:
        frame = pl.read_parquet(io.BytesIO(lake.store.get(bucket, key)))
        assert dict(frame.schema) == CONTRACT_SCHEMA
        frames.append(frame)
    records = pl.concat(frames)
    assert records.height == committed
    assert records.select("kafka_partition", "kafka_offset").is_duplicated().sum() == 0
    assert records["kafka_topic"].unique().to_list() == [lake.name]
    assert sorted(records["checkpoint_id"].unique().to_list()) == [m.checkpoint_id for m in markers if m.record_count]
    assert markers[1].record_count > 0, "the second checkpoint picked up records produced meanwhile"
    for marker in markers:
        for r in marker.ranges:
            offsets = records.filter(pl.col("kafka_partition") == r.partition, pl.col("checkpoint_id") == marker.checkpoint_id)
            assert sorted(offsets["kafka_offset"].to_list()) == list(range(r.start, r.end))

    csv_keys = [k for k in lake.store.list_keys(bucket, f"{lake.name}/write-ahead-commit-log/") if k.endswith(".csv")]
    assert len(csv_keys) == 3 * lake.parallelism
    listed = {row.s3_key for key in csv_keys for row in parse_csv(lake.store.get(bucket, key))}
    assert listed == {f"s3://{bucket}/{key}" for key in output_keys}

    verify = subprocess.run(
        [str(BIN / "lineage"), "verify", "--deep"],
        env={**lake.env, "PATH": str(BIN)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert f"records {committed}" in verify.stdout


def lineage(lake, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "lineage"), *args], env={**lake.env, "PATH": str(BIN)}, capture_output=True, text=True, check=False
    )


def test_lineage_cli_reads_the_commit_log_and_verify_catches_a_lost_file(lake, dagster_home):
    lake.produce(1000)
    assert run_checkpoint_cli(lake, dagster_home).returncode == 0
    listing = lineage(lake, "checkpoints")
    assert listing.returncode == 0 and "      1000" in listing.stdout
    files = lineage(lake, "files", "1")
    assert files.returncode == 0 and files.stdout.count("part-00000001-") == 10
    located = lineage(lake, "locate", "--partition", "3", "--offset", "42")
    assert located.returncode == 0
    assert "checkpoint 1" in located.stdout and "part-00000001-1.parquet" in located.stdout  # partition 3 -> subtask 1
    missing = lineage(lake, "files", "7")
    assert missing.returncode == 2 and "not committed" in missing.stderr and "Traceback" not in missing.stderr

    clean = json.loads(lineage(lake, "verify", "--json").stdout)
    assert clean["ok"] and clean["checkpoints"] == 1 and clean["records"] == 1000

    victim = next(k for k in lake.store.list_keys("flink-data", f"{lake.name}/output/"))
    lake.store.client.delete_object(Bucket="flink-data", Key=victim)
    broken = lineage(lake, "verify", "--json")
    assert broken.returncode == 1
    report = json.loads(broken.stdout)
    assert not report["ok"]
    assert any(victim in v and "does not exist" in v for v in report["violations"])
    human = lineage(lake, "verify", "--deep")
    assert human.returncode == 1 and "FAILED" in human.stdout
