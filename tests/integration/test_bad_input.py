"""Bad records never stop the pipeline and are never lost; bad configuration fails clearly and
writes nothing; secrets never reach logs or Dagster's storage. Against the real services."""

import io
import subprocess
import uuid

import polars as pl
import pytest
from confluent_kafka import Producer
from dagster import AssetKey, DagsterInstance
from fastavro import parse_schema, schemaless_writer

from lineage_dagster.ingest.avro import encode_event
from lineage_dagster.ledger.paths import split_uri
from lineage_dagster.ledger.protocol import read_marker
from lineage_dagster.ledger.verify import verify_ledger
from tests.helpers import BIN, run_checkpoint_cli

MAX_RECORD_BYTES = 10_000


def other_schema_payload() -> bytes:
    out = io.BytesIO()
    schema = parse_schema(
        {"type": "record", "name": "Other", "fields": [{"name": "n", "type": "int"}, {"name": "ok", "type": "boolean"}]}
    )
    schemaless_writer(out, schema, {"n": 7, "ok": True})
    return out.getvalue()


GOOD = encode_event("5f0c1d9e-0000-4000-8000-000000000000", 1_764_000_000_000)
BAD_PAYLOADS = {
    "random bytes": bytes([0x8F, 0x13, 0x77, 0xA0, 0x01, 0xFE]),
    "truncated": GOOD[:-3],
    "trailing garbage": GOOD + b"\x00\x01",
    "wrong schema": other_schema_payload(),
    "tombstone": None,
    "bad utf-8": b"\x06\xff\xfe\xfd" + GOOD[-6:],
    "oversize": b"\x00" * (MAX_RECORD_BYTES + 1),
    "empty": b"",
    "negative length": b"\x05abc" + GOOD[-6:],
    "huge length": b"\xfe\xff\xff\xff\xff\xff\xff\xff\x7f" + b"x" * 20,
    "confluent wire format": b"\x00\x00\x00\x00\x01" + GOOD,
    "json text": b'{"uuid": "x", "timestamp": 1}',
    "varint overflow": b"\x02a" + b"\xff" * 11,
    "avro container": b"Obj\x01\x04\x14avro.codec\x08null\x00",
}


def test_bad_payloads_go_to_dropped_and_everything_is_accounted(lake, dagster_home):
    producer = Producer(lake.client_config)
    expected_bad: dict[tuple[int, int], str] = {}
    good = 0
    partitions = [0] * 10
    for index, (kind, payload) in enumerate(BAD_PAYLOADS.items()):
        for _ in range(3):  # good records between the bad ones
            partition = (index + good) % 10
            producer.produce(lake.name, encode_event(str(uuid.uuid4()), 1_764_000_000_000 + good), partition=partition)
            partitions[partition] += 1
            good += 1
        partition = index % 10
        producer.produce(lake.name, payload, key=kind.encode(), partition=partition)
        expected_bad[(partition, partitions[partition])] = kind
        partitions[partition] += 1
    assert producer.flush(30) == 0

    result = run_checkpoint_cli(lake, dagster_home, MAX_RECORD_BYTES=str(MAX_RECORD_BYTES))
    assert result.returncode == 0, result.stderr[-3000:]
    marker = read_marker(lake.store, lake.commit_log, 1)
    assert (marker.record_count, marker.dropped_count) == (good, len(BAD_PAYLOADS))

    def read(prefix: str) -> pl.DataFrame:
        keys = lake.store.list_keys("flink-data", f"{lake.name}/{prefix}/")
        return pl.concat([pl.read_parquet(io.BytesIO(lake.store.get("flink-data", k))) for k in keys])

    dropped = read("dropped")
    found = {(row["kafka_partition"], row["kafka_offset"]): row for row in dropped.iter_rows(named=True)}
    assert set(found) == set(expected_bad)
    for coordinates, kind in expected_bad.items():
        row = found[coordinates]
        assert row["kafka_key"] == kind.encode()
        assert row["raw_value"] == BAD_PAYLOADS[kind]
        assert row["error"] and row["kafka_topic"] == lake.name and row["kafka_timestamp"] > 0
    data = read("output")
    assert data.height == good
    assert data.select("kafka_partition", "kafka_offset").is_duplicated().sum() == 0
    assert not set(data.select("kafka_partition", "kafka_offset").iter_rows()) & set(expected_bad)

    report = verify_ledger(lake.store, lake.commit_log, [lake.output, lake.dropped], deep=True)
    assert report.ok, report.violations
    assert (report.records, report.dropped, report.rows_read) == (good, len(BAD_PAYLOADS), good + len(BAD_PAYLOADS))

    instance = DagsterInstance.from_config(str(dagster_home))
    events = instance.get_latest_materialization_event(AssetKey("enriched_events")).asset_materialization
    assert events.metadata["dropped_records"].value == len(BAD_PAYLOADS)


def lake_is_untouched(lake) -> bool:
    return not lake.store.list_keys("flink-data", f"{lake.name}/")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}, "check KAFKA_BOOTSTRAP_SERVERS"),
        ({"KAFKA_TOPIC": "no-such-topic"}, "fix KAFKA_TOPIC"),
        ({"OUTPUT_PATH": "s3://no-such-bucket/output"}, "bucket 'no-such-bucket' does not exist"),
        ({"AWS_SECRET_ACCESS_KEY": "wrong-secret"}, "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
        ({"OUTPUT_PATH": "output/data"}, "OUTPUT_PATH='output/data': expected s3://bucket/prefix"),
        ({"PARALLELISM": "0"}, "PARALLELISM='0': Input should be greater than or equal to 1"),
    ],
)
def test_configuration_errors_fail_clearly_and_write_nothing(lake, dagster_home, override, message):
    lake.produce(100)
    result = run_checkpoint_cli(lake, dagster_home, **override)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert lake_is_untouched(lake)


@pytest.mark.parametrize(
    ("command", "override", "message"),
    [
        (["generate", "--count", "1"], {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}, "check KAFKA_BOOTSTRAP_SERVERS"),
        (["generate", "--count", "1"], {"KAFKA_TOPIC": "no-such-topic"}, "fix KAFKA_TOPIC"),
        (["verify"], {"AWS_SECRET_ACCESS_KEY": "wrong-secret"}, "AWS_SECRET_ACCESS_KEY"),
        (["checkpoints"], {"WRITE_AHEAD_COMMIT_LOG_PATH": "s3://no-such-bucket/log"}, "no-such-bucket"),
        (["verify"], {"PARALLELISM": "many"}, "PARALLELISM='many': Input should be a valid integer"),
    ],
)
def test_cli_user_errors_exit_2_without_traceback(lake, command, override, message):
    result = subprocess.run(
        [str(BIN / "lineage"), *command],
        env={**lake.env, "PATH": str(BIN), **override},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_no_secret_in_logs_or_dagster_storage(lake, dagster_home):
    secret = lake.env["AWS_SECRET_ACCESS_KEY"]
    lake.produce(500)
    result = run_checkpoint_cli(lake, dagster_home)
    assert result.returncode == 0
    assert secret not in result.stdout + result.stderr
    stored = [path for path in dagster_home.rglob("*") if path.is_file()]
    assert any(path.suffix == ".db" for path in stored), "the instance stored the run"
    leaks = [str(path) for path in stored if secret.encode() in path.read_bytes()]
    assert not leaks
    assert lake.store.get("flink-data", f"{lake.name}/write-ahead-commit-log/chk-1/_plan.json")
    ledger = b"".join(
        lake.store.get("flink-data", k) for k in lake.store.list_keys("flink-data", f"{lake.name}/write-ahead-commit-log/")
    )
    assert secret.encode() not in ledger


def test_large_bad_records_are_split_within_the_buffer_and_a_retry_rewrites_the_same_files(lake, dagster_home):
    """A flood of 300 KB undecodable payloads: with SUBTASK_BUFFER_BYTES=4 MiB a subtask writes them
    in files of at most its partitions' shares; a crash, then a retry (with another setting, which
    the stored plan overrides) rewrites the same objects, and every record is accounted once."""
    lake.produce(2000)
    producer = Producer(lake.client_config)
    junk = [b"\xff" * 300_000 + index.to_bytes(2, "big") for index in range(24)]
    for index, payload in enumerate(junk):
        producer.produce(lake.name, payload, partition=index % 2)  # partition 0: subtask 0, 1: subtask 1
    assert producer.flush(30) == 0

    crashed = run_checkpoint_cli(lake, dagster_home, SUBTASK_BUFFER_BYTES=str(4 * 1024 * 1024), LINEAGE_FAULT="during_write:kill")
    assert crashed.returncode == -9, crashed.stderr[-2000:]
    prefix = f"{lake.name}/"
    first_attempt = {
        key: lake.store.get("flink-data", key) for key in lake.store.list_keys("flink-data", prefix) if "/part-" in key
    }
    assert any("/dropped/" in key and "-p0-" in key for key in first_attempt), sorted(first_attempt)

    result = run_checkpoint_cli(lake, dagster_home, SUBTASK_BUFFER_BYTES=str(64 * 1024 * 1024))
    assert result.returncode == 0, result.stderr[-3000:]
    assert {key: lake.store.get("flink-data", key) for key in first_attempt} == first_attempt
    marker = read_marker(lake.store, lake.commit_log, 1)
    assert (marker.record_count, marker.dropped_count) == (2000, 24)
    report = verify_ledger(lake.store, lake.commit_log, [lake.output, lake.dropped], deep=True)
    assert report.ok, report.violations

    share = 4 * 1024 * 1024 // 5  # five partitions per subtask hold records
    dropped_files = [uri for uri in marker.files if "/dropped/" in uri]
    assert len(dropped_files) >= 4

    def read(uri: str) -> pl.DataFrame:
        return pl.read_parquet(io.BytesIO(lake.store.get(*split_uri(uri))))

    for uri in dropped_files:
        raw = read(uri)["raw_value"]
        limit = share if "-p" in uri.rsplit("/", 1)[1] else 4 * 1024 * 1024
        assert raw.bin.size().sum() <= limit + len(junk[0]), uri
    assert sorted(pl.concat(read(uri)["raw_value"] for uri in dropped_files).to_list()) == sorted(junk)

    offset = 2000 // 10 + 7  # partition 0's 8th junk record (the good ones came first)
    located = subprocess.run(
        [str(BIN / "lineage"), "locate", "--partition", "0", "--offset", str(offset)],
        env={**lake.env, "PATH": str(BIN)},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert located.returncode == 0, located.stderr
    holders = located.stdout.strip().splitlines()
    assert holders and all("(dropped)" in line or "(data)" in line for line in holders)
    holding = [line for line in holders if "(dropped)" in line]
    assert len(holding) == 1
    uri = holding[0].split(": ", 1)[1].split(" ")[0]
    assert offset in read(uri)["kafka_offset"].to_list()


def test_a_large_dead_letter_file_is_written_in_row_groups_bounded_by_bytes(lake, dagster_home):
    """24 undecodable payloads of 600 KB (14 MB) in one partition land in one dead-letter file; it
    is written in row groups of about ROW_GROUP_BYTES (8 MiB), not as one group: its footer is
    larger than that of the same rows written as one group, and every payload reads back."""
    producer = Producer(lake.client_config)
    junk = [b"\xfe" * 600_000 + index.to_bytes(2, "big") for index in range(24)]
    for payload in junk:
        producer.produce(lake.name, payload, partition=0)
    assert producer.flush(30) == 0
    result = run_checkpoint_cli(lake, dagster_home, MAX_RECORD_BYTES=str(1 << 20))
    assert result.returncode == 0, result.stderr[-3000:]
    marker = read_marker(lake.store, lake.commit_log, 1)
    (dropped_uri,) = [uri for uri in marker.files if "/dropped/" in uri]
    body = lake.store.get(*split_uri(dropped_uri))
    frame = pl.read_parquet(io.BytesIO(body))
    # Offset order, which need not be the order produced: a retried batch may land later.
    assert frame["kafka_offset"].to_list() == list(range(len(junk)))
    assert sorted(frame["raw_value"].to_list()) == junk
    one_group = io.BytesIO()
    frame.write_parquet(one_group, compression="zstd", compression_level=1, statistics=True)

    def footer_length(parquet: bytes) -> int:
        return int.from_bytes(parquet[-8:-4], "little")

    assert footer_length(body) > footer_length(one_group.getvalue())
    report = verify_ledger(lake.store, lake.commit_log, [lake.output, lake.dropped], deep=True)
    assert report.ok, report.violations


def test_a_retry_drops_by_the_record_size_limit_its_plan_was_made_with(lake, dagster_home):
    """MAX_RECORD_BYTES is fixed in the plan like SUBTASK_BUFFER_BYTES: a retry under another
    setting drops exactly what the first attempt would have, and the next checkpoint uses the new one."""
    lake.produce(1000)  # seed records are ~43 bytes: all over a 40-byte limit
    crashed = run_checkpoint_cli(lake, dagster_home, MAX_RECORD_BYTES="40", LINEAGE_FAULT="after_plan:kill")
    assert crashed.returncode == -9, crashed.stderr[-2000:]
    retried = run_checkpoint_cli(lake, dagster_home)
    assert retried.returncode == 0, retried.stderr[-3000:]
    first = read_marker(lake.store, lake.commit_log, 1)
    assert (first.record_count, first.dropped_count) == (0, 1000)
    dropped = pl.concat(pl.read_parquet(io.BytesIO(lake.store.get(*split_uri(uri)))) for uri in first.files if "/dropped/" in uri)
    assert dropped["error"].str.contains("exceeds MAX_RECORD_BYTES=40").all()

    lake.produce(500)
    assert run_checkpoint_cli(lake, dagster_home).returncode == 0
    second = read_marker(lake.store, lake.commit_log, 2)
    assert (second.record_count, second.dropped_count) == (500, 0)
