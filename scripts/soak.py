#!/usr/bin/env python3
"""Soak test: produce continuously, run checkpoints while killing runs at random step boundaries,
then catch up and check every record landed exactly once.

    .venv/bin/python scripts/soak.py --rounds 30

Brings up its own Kafka + S3 (ports 7000 above the defaults, data in /tmp/lineage-soak) and prints
`records N, lost 0, duplicated 0` at the end; exits non-zero if anything was lost or duplicated.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import polars as pl

from lineage_dagster.clients.kafka import KafkaRecordSource
from lineage_dagster.generator import produce_events
from lineage_dagster.ledger.paths import split_uri
from lineage_dagster.ledger.verify import committed_checkpoints
from lineage_dagster.local_stack import LocalStack, StackConfig
from lineage_dagster.settings import load_resources

BIN = Path(sys.executable).parent
POINTS = ["after_plan", "during_write", "after_data", "after_log", "after_marker"]


def run_checkpoint(env: dict[str, str], fault: str | None) -> int:
    extra = {"LINEAGE_FAULT": fault} if fault else {}
    return subprocess.run(
        [str(BIN / "dagster"), "job", "execute", "-m", "lineage_dagster.definitions", "-j", "checkpoint_job"],
        env={**env, **extra},
        capture_output=True,
        check=False,
        timeout=600,
    ).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--kill-probability", type=float, default=0.5)
    parser.add_argument("--rate", type=float, default=2000.0, help="records per second produced during the soak")
    parser.add_argument("--port-offset", type=int, default=7000)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/lineage-soak"))
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    stack = LocalStack(StackConfig(data_dir=args.data_dir).shifted(args.port_offset, args.data_dir))
    topic = f"soak-{uuid.uuid4().hex[:8]}"
    stack.up()
    stack.create_topic(topic, 10)
    env = {
        **stack.pipeline_env(topic),
        "DAGSTER_HOME": str(args.data_dir / f"dagster-{topic}"),
        "PATH": str(BIN),
    }
    Path(env["DAGSTER_HOME"]).mkdir(parents=True)
    os.environ.update(env)  # secrets are read from the process environment
    resources = load_resources()
    client_config = resources.kafka.client_config()

    stop = threading.Event()

    def produce() -> None:
        while not stop.is_set():
            produce_events(client_config, topic, rate=args.rate, count=int(args.rate))

    producer = threading.Thread(target=produce)
    producer.start()
    kills = 0
    try:
        for round_no in range(1, args.rounds + 1):
            fault = f"{rng.choice(POINTS)}:kill" if rng.random() < args.kill_probability else None
            code = run_checkpoint(env, fault)
            kills += code == -9
            print(f"round {round_no}: {fault or 'no fault'} -> exit {code}", flush=True)
    finally:
        stop.set()
        producer.join()

    source = KafkaRecordSource(client_config, topic)
    produced = sum(high for _, high in source.watermarks().values())
    store = resources.lake.store()
    for _ in range(50):  # catch up without faults
        markers, _ = committed_checkpoints(store, resources.lake.commit_log)
        if markers and sum(markers[-1].end_offsets().values()) >= produced:
            break
        if run_checkpoint(env, None) != 0:
            print("a clean catch-up checkpoint failed", file=sys.stderr)
    verify = subprocess.run([str(BIN / "lineage"), "verify", "--deep"], env=env, check=False)

    markers, _ = committed_checkpoints(store, resources.lake.commit_log)
    frames = [
        pl.read_parquet(io.BytesIO(store.get(*split_uri(uri)) or b""), columns=["kafka_partition", "kafka_offset"])
        for marker in markers
        for uri in marker.files
    ]
    rows = pl.concat(frames) if frames else pl.DataFrame({"kafka_partition": [], "kafka_offset": []})
    distinct = rows.unique().height
    lost, duplicated = produced - distinct, rows.height - distinct
    print(f"checkpoints {len(markers)}, runs killed {kills}")
    print(f"records {produced}, lost {lost}, duplicated {duplicated}")
    stack.down()
    return 0 if lost == 0 and duplicated == 0 and verify.returncode == 0 else 1


if __name__ == "__main__":
    started = time.monotonic()
    code = main()
    print(f"soak took {time.monotonic() - started:.0f}s")
    sys.exit(code)
