"""End to end as a user runs it: `dagster job execute` in a subprocess, then every file read back
from S3 and checked against the output contract, independently of the product's own verifier."""

import io
import itertools
import re
import subprocess
import threading

import polars as pl

from lineage_dagster.ledger.commit_log import parse_csv
from lineage_dagster.ledger.protocol import read_marker
from tests.conftest import BIN, run_checkpoint_cli

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
    for _ in range(3):
        result = run_checkpoint_cli(lake, dagster_home)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    more.join()

    bucket = "flink-data"
    log = lake.settings.commit_log
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
    assert len(csv_keys) == 3 * lake.settings.parallelism
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
