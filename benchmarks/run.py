#!/usr/bin/env python3
"""Throughput, memory and overhead figures on the real services, printed as one table.

    .venv/bin/python benchmarks/run.py                     # 1M records: about 2 minutes
    .venv/bin/python benchmarks/run.py --backlog 10000000  # also drain a 10M backlog, verify --deep it

Brings up its own Kafka + S3 (ports 15000 above the defaults, data in /tmp/lineage-bench) and stops
them at the end. Not part of the test suite; docs/benchmarks.md keeps the latest table.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
import uuid
from importlib import metadata
from pathlib import Path

from confluent_kafka import Consumer, Message, TopicPartition
from dagster import AssetKey, DagsterInstance

from lineage_dagster.clients.kafka import KafkaRecordSource
from lineage_dagster.generator import produce_events
from lineage_dagster.ingest.bulk_decode import decode_batch
from lineage_dagster.local_stack import LocalStack, StackConfig

BIN = Path(sys.executable).parent
HERE = Path(__file__).parent


def timed_process(args: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """Wall seconds, peak RSS in MiB (process and children) and output of a command."""
    started = time.perf_counter()
    process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = process.stdout.read() if process.stdout else ""
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{output[-3000:]}")
    return elapsed, usage.ru_maxrss // 1024, output


def raw_consume(bootstrap: str, topic: str, partitions: int, total: int) -> tuple[float, list[bytes]]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "bench",
            "enable.auto.commit": False,
            "fetch.max.bytes": 64 * 1024 * 1024,
            "max.partition.fetch.bytes": 16 * 1024 * 1024,
            "queued.max.messages.kbytes": 262144,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    values: list[bytes] = []
    seen = 0
    started = time.perf_counter()
    while seen < total:
        messages = consumer.consume(100_000, timeout=1)
        values.extend(map(Message.value, messages))
        sum(map(Message.partition, messages))
        sum(map(Message.offset, messages))
        seen += len(messages)
    elapsed = time.perf_counter() - started
    consumer.close()
    return elapsed, values


def checkpoint(env: dict[str, str]) -> tuple[float, int, dict]:
    wall, rss, _ = timed_process(
        [str(BIN / "dagster"), "job", "execute", "-m", "lineage_dagster.definitions", "-j", "checkpoint_job"], env
    )
    instance = DagsterInstance.from_config(env["DAGSTER_HOME"])
    event = instance.get_latest_materialization_event(AssetKey("write_ahead_commit_log"))
    metadata_values = {k: v.value for k, v in event.asset_materialization.metadata.items()} if event else {}
    instance.dispose()
    return wall, rss, metadata_values


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--backlog", type=int, default=0, help="also drain a backlog of this many records")
    parser.add_argument("--port-offset", type=int, default=15000)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/lineage-bench"))
    args = parser.parse_args()

    stack = LocalStack(StackConfig(data_dir=args.data_dir).shifted(args.port_offset, args.data_dir))
    stack_env = stack.up()
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    stack.create_topic(topic, 10)
    home = args.data_dir / f"dagster-{topic}"
    home.mkdir(parents=True)
    env = {
        **os.environ,
        **stack.pipeline_env(topic),
        "DAGSTER_HOME": str(home),
        "MAX_RECORDS_PER_CHECKPOINT": str(args.records),
    }
    bootstrap = stack_env["KAFKA_BOOTSTRAP_SERVERS"]
    rows: list[tuple[str, str, str, str]] = []
    try:
        print(f"producing {args.records} records...", flush=True)
        produce_events({"bootstrap.servers": bootstrap}, topic, rate=None, count=args.records)

        consume_s, values = raw_consume(bootstrap, topic, 10, args.records)
        raw_rate = args.records / consume_s
        rows.append(("raw consume", f"{raw_rate:,.0f} records/s", "baseline", ""))

        decode_batch(values[:1000], 1 << 20)  # warm up imports
        started = time.perf_counter()
        decoded = decode_batch(values, 1 << 20)
        decode_rate = len(values) / (time.perf_counter() - started)
        assert len(decoded.indexes) == len(values)
        rows.append(("decode stage", f"{decode_rate:,.0f} rows/s", ">= 4,000,000 rows/s", f"{decode_rate / 4e6:.2f}x target"))
        del values, decoded

        wall, rss, meta = checkpoint(env)
        pipeline_rate = meta["records"] / meta["duration_s"]
        rows.append(
            (
                "pipeline rate",
                f"{pipeline_rate:,.0f} records/s ({meta['records']:,} in {meta['duration_s']:.2f}s)",
                ">= 0.6x raw, >= 400k/s/core",
                f"{pipeline_rate / raw_rate:.2f}x raw",
            )
        )
        empty_wall, _, _ = checkpoint(env)
        trivial_wall, _, _ = timed_process(
            [str(BIN / "dagster"), "job", "execute", "-f", str(HERE / "trivial_job.py"), "-j", "trivial_job"], env
        )
        rows.append(("checkpoint by CLI", f"{wall:.2f} s wall", "<= empty + 3 s", f"empty + {wall - empty_wall:.2f} s"))
        rows.append(
            (
                "empty checkpoint",
                f"{empty_wall:.2f} s wall",
                "<= 1.5x trivial job",
                f"{empty_wall / trivial_wall:.2f}x ({trivial_wall:.2f} s)",
            )
        )
        rows.append(("memory, 1M checkpoint", f"{rss} MiB peak RSS", "<= 1024 MiB", ""))

        if args.backlog:
            print(f"producing a backlog of {args.backlog} records...", flush=True)
            produce_events({"bootstrap.servers": bootstrap}, topic, rate=None, count=args.backlog)
            high = sum(h for _, h in KafkaRecordSource({"bootstrap.servers": bootstrap}, topic).watermarks().values())
            peak, drained, started = 0, 0, time.perf_counter()
            while True:
                _, rss, meta = checkpoint(env)
                peak = max(peak, rss)
                drained += meta["records"]
                print(f"  checkpoint {meta['checkpoint_id']}: {meta['records']} records, {rss} MiB", flush=True)
                if meta["lag_after_commit"] == 0 or sum(meta["end_offsets"].values()) >= high:
                    break
            backlog_s = time.perf_counter() - started
            rows.append(
                ("memory, backlog drain", f"{peak} MiB peak RSS", "<= 1024 MiB", f"{drained:,} records in {backlog_s:.0f} s")
            )
            verify_wall, _, output = timed_process([str(BIN / "lineage"), "verify", "--deep"], env)
            total_rows = args.records + args.backlog
            rows.append(
                (
                    "verify --deep",
                    f"{total_rows / verify_wall:,.0f} rows/s ({total_rows:,} rows)",
                    ">= 2,000,000 rows/s",
                    output.strip().splitlines()[-1],
                )
            )
    finally:
        stack.down()

    versions = ", ".join(f"{p} {metadata.version(p)}" for p in ("dagster", "confluent-kafka", "polars", "pyarrow", "numpy"))
    print()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; {versions}")
    print(f"| {'figure':<22} | {'measured':<44} | {'target':<28} | {'ratio':<30} |")
    print(f"|{'-' * 24}|{'-' * 46}|{'-' * 30}|{'-' * 32}|")
    for figure, measured, target, ratio in rows:
        print(f"| {figure:<22} | {measured:<44} | {target:<28} | {ratio:<30} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
