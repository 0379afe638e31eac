#!/usr/bin/env python3
"""Checkpoint throughput, CPU and memory for each Dagster executor, on the real services.

    .venv/bin/python benchmarks/run.py                                     # 1M records, PARALLELISM 2
    .venv/bin/python benchmarks/run.py --records 5000000 --parallelism 4   # large checkpoints
    .venv/bin/python benchmarks/run.py --executors in_process --backlog 10000000 --sustained 300 --large-records 1200

Brings up its own Kafka, S3, Redis and PostgreSQL (ports 15000 above the defaults, data in
/tmp/lineage-bench) and two Celery workers, and stops them at the end. Each executor checkpoints
the same records into a lake of its own. Not part of the test suite; docs/benchmarks.md keeps the
latest table.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path

from confluent_kafka import Message, Producer
from dagster import AssetKey, DagsterEventType, DagsterInstance, RunsFilter

from lineage_dagster.clients.kafka import BATCH_SIZE, CONSUME_SIZE, KafkaRecordSource
from lineage_dagster.generator import produce_events
from lineage_dagster.ingest.bulk_decode import decode_batch
from lineage_dagster.ledger.plan import PartitionRange
from lineage_dagster.local_stack import LocalStack, StackConfig

BIN = Path(sys.executable).parent
HERE = Path(__file__).parent
CORES = os.cpu_count() or 1
TICK_S = 1 / os.sysconf("SC_CLK_TCK")
EXECUTORS = ("in_process", "multiprocess", "celery")
CELERY_WORKERS = 2

Row = tuple[str, str, str, str]  # a line of the printed table: figure, measured, target, note


def _busy_ticks() -> int:
    """Clock ticks all the machine's cores together spent running anything since boot."""
    user, nice, system, _idle, _iowait, irq, softirq = map(int, Path("/proc/stat").read_text().split(maxsplit=8)[1:8])
    return user + nice + system + irq + softirq


def _stat_fields(pid: int | str) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name (which may hold spaces): state, ppid, ..."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _own_ticks(pids: Sequence[int]) -> int:
    """CPU ticks the processes (all their threads) used so far."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = _stat_fields(pid)
            total += int(fields[11]) + int(fields[12])
    return total


def process_tree(root: int) -> list[int]:
    """`root` and its descendants alive now."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                parent = int(_stat_fields(entry.name)[1])
            except (OSError, IndexError):  # ended meanwhile
                continue
            children.setdefault(parent, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def proportional_bytes(pids: Sequence[int]) -> int:
    """Proportional set size summed: a page shared by n of the processes counts 1/n in each, so
    the sum is the memory they use together (what a container's limit sees, near enough)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
                    break
    return total


@dataclass
class Measured:
    wall_s: float
    cpu_s: float  # every process's on the machine but the excluded services'
    peak_pss_mib: int  # of the command's process tree and the watched processes' trees
    output: str


def measure(args: list[str], env: dict[str, str], *, watched: Sequence[int] = (), excluded: Sequence[int] = ()) -> Measured:
    """Run a command and measure what it cost the machine.

    CPU: the machine's busy ticks while it ran, less those of the `excluded` processes (Kafka and
    SeaweedFS) and of this one: so processes the command does not wait for (a forkserver's step
    processes, Celery workers, PostgreSQL) count too. Run it on an otherwise quiet machine. Memory: the peak of the
    PSS summed over the command's process tree and the `watched` processes' trees, sampled every 0.2 s."""
    excluded = [*excluded, os.getpid()]  # this process samples the command meanwhile
    busy, services = _busy_ticks(), _own_ticks(excluded)
    started = time.perf_counter()
    process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = 0
    exited = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not exited.wait(0.2):
            pids = [pid for root in (process.pid, *watched) for pid in process_tree(root)]
            peak = max(peak, proportional_bytes(pids))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output = process.stdout.read() if process.stdout else ""
    process.wait()
    elapsed = time.perf_counter() - started
    exited.set()
    sampler.join()
    cpu_s = ((_busy_ticks() - busy) - (_own_ticks(excluded) - services)) * TICK_S
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{output[-3000:]}")
    return Measured(elapsed, cpu_s, peak >> 20, output)


def raw_consume(bootstrap: str, topic: str, total: int) -> float:
    """Seconds to read `total` records with the pipeline's own consumer tuning and consume size,
    touching each message's value, partition and offset, the cyclic GC paused: the ceiling."""
    source = KafkaRecordSource({"bootstrap.servers": bootstrap}, topic)
    everything = [PartitionRange(p, low, high) for p, (low, high) in source.watermarks().items()]
    consumer = source.start_reading(everything)
    seen = 0
    gc.disable()
    started = time.perf_counter()
    while seen < total:
        messages = consumer.consume(min(CONSUME_SIZE, total - seen), timeout=1)
        list(map(Message.value, messages))
        sum(map(Message.partition, messages))
        sum(map(Message.offset, messages))
        seen += len(messages)
    elapsed = time.perf_counter() - started
    gc.enable()
    consumer.close()
    return elapsed


def decode_rate(bootstrap: str, topic: str, records: int) -> float:
    """Rows/s decoding in the batches the pipeline decodes, median of 3 passes."""
    source = KafkaRecordSource({"bootstrap.servers": bootstrap}, topic)
    ranges = [PartitionRange(p, low, high) for p, (low, high) in source.watermarks().items()]
    values = [v for batch in source.read_ranges(ranges) for v in batch.values][:records]
    rates = []
    for _ in range(3):
        started = time.perf_counter()
        decoded = sum(len(decode_batch(values[i : i + BATCH_SIZE], 1 << 20).indexes) for i in range(0, len(values), BATCH_SIZE))
        rates.append(len(values) / (time.perf_counter() - started))
        assert decoded == len(values)
    return statistics.median(rates)


def dagster_home(path: Path, instance_yaml: str) -> Path:
    path.mkdir(parents=True)
    (path / "dagster.yaml").write_text(resources.files("lineage_dagster").joinpath(f"deploy/{instance_yaml}").read_text())
    return path


def commit_metadata(home: Path, env: dict[str, str], limit: int = 10_000) -> list[dict]:
    """Metadata of the newest `limit` commit-log materializations in a Dagster home, newest first."""
    with _instance(home, env) as instance:
        records = instance.fetch_materializations(AssetKey("write_ahead_commit_log"), limit=limit).records
        return [{k: v.value for k, v in r.asset_materialization.metadata.items()} for r in records if r.asset_materialization]


@contextlib.contextmanager
def _instance(home: Path, env: dict[str, str]) -> Iterator[DagsterInstance]:
    saved = os.environ.get("DAGSTER_POSTGRES_URL")
    if "DAGSTER_POSTGRES_URL" in env:
        os.environ["DAGSTER_POSTGRES_URL"] = env["DAGSTER_POSTGRES_URL"]
    instance = DagsterInstance.from_config(str(home))
    try:
        yield instance
    finally:
        instance.dispose()
        if saved is None:
            os.environ.pop("DAGSTER_POSTGRES_URL", None)
        else:
            os.environ["DAGSTER_POSTGRES_URL"] = saved


def step_start_latency_s(home: Path, env: dict[str, str]) -> float | None:
    """Median seconds from the last step that finished before a step started to its start, over
    the subtask and commit steps of the newest run: what the executor adds to hand a step over
    (its inputs are ready by then, or it waits for a free process)."""
    with _instance(home, env) as instance:
        run = instance.get_runs(RunsFilter(job_name="checkpoint_job"), limit=1)[0]
        events = instance.all_logs(run.run_id, of_type={DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS})
    finished = sorted(e.timestamp for e in events if e.dagster_event.event_type == DagsterEventType.STEP_SUCCESS)
    waits = [
        e.timestamp - max(t for t in finished if t <= e.timestamp)
        for e in events
        if e.dagster_event.event_type == DagsterEventType.STEP_START
        and e.step_key != "checkpoint.plan_checkpoint"
        and any(t <= e.timestamp for t in finished)
    ]
    return statistics.median(waits) if waits else None


@dataclass
class Lake:
    """One executor's pipeline: the shared topic, S3 prefixes and a Dagster instance of its own."""

    executor: str
    env: dict[str, str]
    home: Path

    def checkpoint(self, watched: Sequence[int], excluded: Sequence[int]) -> tuple[Measured, dict]:
        command = [str(BIN / "dagster"), "job", "execute", "-m", "lineage_dagster.definitions", "-j", "checkpoint_job"]
        run = measure(command, self.env, watched=watched, excluded=excluded)
        commits = commit_metadata(self.home, self.env, limit=1)
        return run, commits[0] if commits else {}


def build_lake(stack: LocalStack, data_dir: Path, topic: str, executor: str, base: dict[str, str]) -> Lake:
    name = f"{topic}-{executor}"
    env = {**base, **stack.pipeline_env(topic), "CHECKPOINT_EXECUTOR": executor}
    env |= {
        key: env[key].replace(f"/{topic}/", f"/{name}/") for key in ("OUTPUT_PATH", "WRITE_AHEAD_COMMIT_LOG_PATH", "DROPPED_PATH")
    }
    if executor == "celery":
        database = name.replace("-", "_")
        stack.create_database(database)
        env |= stack.celery_env(database)
        home = dagster_home(data_dir / f"dagster-{name}", "dagster-postgres.yaml")
    else:
        home = dagster_home(data_dir / f"dagster-{name}", "dagster.yaml")
    return Lake(executor, {**env, "DAGSTER_HOME": str(home)}, home)


def paused_workers(pids: Sequence[int], *, paused: bool) -> None:
    for pid in pids:
        os.killpg(pid, signal.SIGSTOP if paused else signal.SIGCONT)


@contextlib.contextmanager
def celery_workers(env: dict[str, str], data_dir: Path) -> Iterator[list[int]]:
    """Workers started as the README says, each with a process of its own (`--concurrency=1`)."""
    processes = []
    try:
        for n in range(CELERY_WORKERS):
            root = data_dir / f"celery-w{n + 1}"
            dagster_home(root / "home", "dagster-postgres.yaml")
            log = (data_dir / f"celery-w{n + 1}.log").open("w")
            command = [str(BIN / "dagster-celery"), "worker", "start", "-A", "lineage_dagster.celery_app", "-n", f"w{n + 1}"]
            command += ["--", "--concurrency=1"]
            worker_env = {**env, "DAGSTER_HOME": str(root / "home"), "PATH": f"{BIN}:{os.environ['PATH']}"}
            processes.append(
                subprocess.Popen(command, cwd=root, env=worker_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            )
        deadline = time.monotonic() + 90
        while not all(" ready." in (data_dir / f"celery-w{n + 1}.log").read_text() for n in range(CELERY_WORKERS)):
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                raise RuntimeError(f"the Celery workers did not start; see {data_dir}/celery-w*.log")
            time.sleep(0.3)
        yield [p.pid for p in processes]
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGCONT)
                os.killpg(process.pid, signal.SIGTERM)
            process.wait(60)


def executor_rows(
    executor: str, fulls: list[tuple[Measured, dict]], raws: list[float], empties: list[Measured], latency: list
) -> list[Row]:
    full, meta = sorted(fulls, key=lambda run: run[0].wall_s)[len(fulls) // 2]
    records = meta["records"]
    in_run = statistics.median(m["records"] / m["duration_s"] for _, m in fulls)
    paired = statistics.median(raw / m["duration_s"] for raw, (_, m) in zip(raws, fulls, strict=True))
    empty_wall = statistics.median(r.wall_s for r in empties)
    cpu_per_million = statistics.median(r.cpu_s for r, _ in fulls) * 1e6 / records
    latencies = [s for s in latency if s is not None]
    target = {"in_process": ">= 0.45x raw"}.get(executor, ">= 0.4x raw at 5M")
    rows = [
        (
            f"{executor}: in-run",
            f"{in_run:,.0f} records/s (median of {len(fulls)} x {records:,})",
            target,
            f"{paired:.3f}x paired raw",
        ),
        (
            f"{executor}: by CLI",
            f"{full.wall_s:.2f} s wall; empty {empty_wall:.2f} s",
            "<= empty + 2 s" if executor == "in_process" else "",
            f"empty + {full.wall_s - empty_wall:.2f} s",
        ),
        (
            f"{executor}: CPU",
            f"{cpu_per_million:.2f} CPU-s per 1M records (all processes)",
            "<= 4.5" if executor == "in_process" else "",
            f"empty {statistics.median(r.cpu_s for r in empties):.2f} CPU-s",
        ),
        (
            f"{executor}: memory",
            f"{max(r.peak_pss_mib for r, _ in fulls)} MiB peak PSS, all processes",
            "<= 1024 MiB" if executor == "in_process" else "",
            f"step start {statistics.median(latencies):.2f} s after its inputs" if latencies else "",
        ),
    ]
    return rows


def sustained(stack: LocalStack, data_dir: Path, seconds: int, rate: int, excluded: Sequence[int]) -> list[Row]:
    """The generator at `rate` for `seconds` while the Dagster daemon runs the real schedule and sensor."""
    topic = f"sustained-{uuid.uuid4().hex[:8]}"
    stack.create_topic(topic, 10)
    lake = build_lake(stack, data_dir, topic, "in_process", dict(os.environ))
    with (lake.home / "daemon.log").open("w") as daemon_log:
        daemon = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-m", "lineage_dagster.definitions"],
            env=lake.env,
            stdout=daemon_log,
            stderr=subprocess.STDOUT,
        )
        try:
            print(f"sustained: {rate:,} msg/s for {seconds} s with the schedule and catch-up sensor...", flush=True)
            started = time.monotonic()
            generate = [str(BIN / "lineage"), "generate", "--rate", str(rate), "--count", str(rate * seconds)]
            subprocess.run(generate, env=lake.env, check=True, stdout=subprocess.DEVNULL)
            produced_s = time.monotonic() - started
            source = KafkaRecordSource({"bootstrap.servers": lake.env["KAFKA_BOOTSTRAP_SERVERS"]}, topic)
            total = sum(high for _, high in source.watermarks().values())
            deadline = time.monotonic() + 300
            while sum(c["records"] for c in commit_metadata(lake.home, lake.env)) < total and time.monotonic() < deadline:
                time.sleep(5)
        finally:
            daemon.send_signal(signal.SIGINT)
            daemon.wait(60)
    commits = commit_metadata(lake.home, lake.env)
    with _instance(lake.home, lake.env) as instance:
        runs = [r for r in instance.get_run_records(RunsFilter(job_name="checkpoint_job")) if r.end_time and r.start_time]
    committed = sum(c["records"] for c in commits)
    slowest_run = max(r.end_time - r.start_time for r in runs)
    worst_lag = max(c["lag_after_commit"] for c in commits)
    return [
        (
            "sustained input",
            f"{total:,} records in {produced_s:.0f} s ({total / produced_s:,.0f}/s)",
            f"{rate:,}/s for {seconds} s",
            f"{committed:,} committed in {len(commits)} checkpoints",
        ),
        ("sustained checkpoint", f"slowest run {slowest_run:.1f} s wall", "every checkpoint < 30 s", f"{len(runs)} runs"),
        ("sustained lag", f"worst lag after a commit {worst_lag:,}", "< one checkpoint's worth", ""),
    ]


def large_records_drain(stack: LocalStack, data_dir: Path, mib: int, excluded: Sequence[int], size: int = 900_000) -> Row:
    """A backlog of `mib` MiB of undecodable payloads (random bytes, `size` each): the run's memory
    must stay bounded by SUBTASK_BUFFER_BYTES, not grow with the backlog."""
    topic = f"large-{uuid.uuid4().hex[:8]}"
    stack.create_topic(topic, 10)
    lake = build_lake(stack, data_dir, topic, "in_process", dict(os.environ))
    count = (mib << 20) // size
    print(f"producing {count:,} undecodable records of {size:,} bytes...", flush=True)
    producer = Producer({"bootstrap.servers": lake.env["KAFKA_BOOTSTRAP_SERVERS"], "linger.ms": 50})
    for index in range(count):
        while True:
            try:
                producer.produce(topic, os.urandom(size), partition=index % 10)
                break
            except BufferError:  # the producer's queue is full: let it deliver
                producer.poll(0.1)
    if producer.flush(120):
        raise RuntimeError(f"the large records for {topic} were not all delivered")
    runs, dropped, files, started = [], 0, 0, time.perf_counter()
    while dropped < count:
        run, meta = lake.checkpoint(watched=(), excluded=excluded)
        if not meta.get("dropped_records"):
            raise RuntimeError(f"a checkpoint of {topic} committed no dead-letter records:\n{run.output[-3000:]}")
        runs.append(run)
        dropped, files = dropped + meta["dropped_records"], files + meta["files"]
    return (
        "memory, large bad records",
        f"{max(r.peak_pss_mib for r in runs)} MiB peak PSS, all processes",
        "<= 1024 MiB",
        f"{count:,} x {size // 1000} KB ({mib:,} MiB) in {files} files, {time.perf_counter() - started:.0f} s",
    )


def backlog_rows(lake: Lake, bootstrap: str, topic: str, count: int, excluded: Sequence[int]) -> list[Row]:
    print(f"producing a backlog of {count} records...", flush=True)
    produce_events({"bootstrap.servers": bootstrap}, topic, rate=None, count=count)
    high = sum(h for _, h in KafkaRecordSource({"bootstrap.servers": bootstrap}, topic).watermarks().values())
    drains, drained, started = [], 0, time.perf_counter()
    while True:
        run, meta = lake.checkpoint(watched=(), excluded=excluded)
        drains.append(run)
        drained += meta["records"]
        print(f"  checkpoint {meta['checkpoint_id']}: {meta['records']} records, {run.peak_pss_mib} MiB PSS", flush=True)
        if meta["lag_after_commit"] == 0 or sum(meta["end_offsets"].values()) >= high:
            break
    backlog_s = time.perf_counter() - started
    verify = measure([str(BIN / "lineage"), "verify", "--deep"], lake.env)
    return [
        (
            "memory, backlog drain",
            f"{max(r.peak_pss_mib for r in drains)} MiB peak PSS, all processes",
            "<= 1024 MiB",
            f"{drained:,} records in {backlog_s:.0f} s",
        ),
        (
            "verify --deep",
            f"{high / verify.wall_s:,.0f} rows/s ({high:,} rows)",
            ">= 2,000,000 rows/s",
            verify.output.strip().splitlines()[-1],
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000, help="records per checkpoint")
    parser.add_argument("--parallelism", type=int, default=2, help="PARALLELISM: subtask steps per checkpoint")
    parser.add_argument("--executors", default=",".join(EXECUTORS), help="comma-separated, of " + ", ".join(EXECUTORS))
    parser.add_argument("--rounds", type=int, default=3, help="checkpoints per executor whose medians are printed")
    parser.add_argument("--backlog", type=int, default=0, help="also drain a backlog of this many records (in_process)")
    parser.add_argument("--sustained", type=int, default=0, metavar="SECONDS", help="also run the real schedule under load")
    parser.add_argument("--rate", type=int, default=50_000, help="records/s of the sustained load")
    parser.add_argument("--large-records", type=int, default=0, metavar="MIB", help="also drain MiB of 900 KB bad records")
    parser.add_argument("--port-offset", type=int, default=15000)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/lineage-bench"))
    args = parser.parse_args()
    executors = [e.strip() for e in args.executors.split(",") if e.strip()]
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if not executors or set(executors) - set(EXECUTORS):
        parser.error(f"--executors takes some of {', '.join(EXECUTORS)}")

    stack = LocalStack(StackConfig(data_dir=args.data_dir).shifted(args.port_offset, args.data_dir))
    bootstrap = stack.up()["KAFKA_BOOTSTRAP_SERVERS"]
    rows: list[Row] = []
    exits = contextlib.ExitStack()
    try:
        excluded = [stack.running_pid("kafka") or 0, stack.running_pid("seaweedfs") or 0]
        topic = f"bench-{uuid.uuid4().hex[:8]}"
        stack.create_topic(topic, 10)
        base = {**os.environ, "MAX_RECORDS_PER_CHECKPOINT": str(args.records), "PARALLELISM": str(args.parallelism)}
        if "celery" in executors:
            stack.start_redis()
            stack.start_postgres()
        lakes = [build_lake(stack, args.data_dir, topic, executor, base) for executor in executors]
        watched: list[int] = []
        if "celery" in executors:
            celery = next(lake for lake in lakes if lake.executor == "celery")
            watched = exits.enter_context(celery_workers(celery.env, args.data_dir))

        print(f"producing {args.records:,} records...", flush=True)
        produce_events({"bootstrap.servers": bootstrap}, topic, rate=None, count=args.records)
        raw = raw_consume(bootstrap, topic, args.records)
        rows.append(("raw consume", f"{args.records / raw:,.0f} records/s", "baseline", f"{args.records:,} records"))
        rate = decode_rate(bootstrap, topic, min(args.records, 1_000_000))
        rows.append(("decode stage", f"{rate:,.0f} rows/s", ">= 4,000,000 rows/s", ""))
        trivial_job = [str(BIN / "dagster"), "job", "execute", "-f", str(HERE / "trivial_job.py"), "-j", "trivial_job"]
        for lake in lakes:  # each instance's storage is created, and the imports warmed, before timing
            measure(trivial_job, lake.env)

        results: dict[str, tuple[list, list, list, list]] = {lake.executor: ([], [], [], []) for lake in lakes}
        trivials = []
        for round_number in range(args.rounds):
            if round_number:
                produce_events({"bootstrap.servers": bootstrap}, topic, rate=None, count=args.records)
            for lake in lakes:  # every executor checkpoints the same records: the newest million
                fulls, raws, empties, latency = results[lake.executor]
                workers = watched if lake.executor == "celery" else []
                paused_workers(watched, paused=not workers)  # idle workers' CPU is no other executor's
                raws.append(raw_consume(bootstrap, topic, args.records))
                fulls.append(lake.checkpoint(workers, excluded))
                print(f"  {lake.executor}: {fulls[-1][1]['records']:,} records in {fulls[-1][0].wall_s:.2f} s", flush=True)
                latency.append(step_start_latency_s(lake.home, lake.env))
                empties.append(lake.checkpoint(workers, excluded)[0])
            paused_workers(watched, paused=True)
            trivials.append(measure(trivial_job, lakes[0].env))
        for executor, (fulls, raws, empties, latency) in results.items():
            rows.extend(executor_rows(executor, fulls, raws, empties, latency))
        rows.append(("trivial Dagster job", f"{statistics.median(r.wall_s for r in trivials):.2f} s wall", "", "yardstick"))

        if args.backlog:
            backlog_lake = build_lake(stack, args.data_dir, f"{topic}-backlog", "in_process", dict(os.environ))
            stack.create_topic(f"{topic}-backlog", 10)
            rows.extend(backlog_rows(backlog_lake, bootstrap, f"{topic}-backlog", args.backlog, excluded))
        if args.large_records:
            rows.append(large_records_drain(stack, args.data_dir, args.large_records, excluded))
        if args.sustained:
            rows.extend(sustained(stack, args.data_dir, args.sustained, args.rate, excluded))
    finally:
        exits.close()
        stack.down()

    versions = ", ".join(f"{p} {metadata.version(p)}" for p in ("dagster", "dagster-celery", "confluent-kafka", "polars"))
    print()
    print(f"machine: {platform.machine()}, {CORES} cores, Python {platform.python_version()}; {versions}")
    print(f"PARALLELISM={args.parallelism}, {args.records:,} records per checkpoint, {CELERY_WORKERS} Celery workers")
    print(f"| {'figure':<24} | {'measured':<50} | {'target':<20} | {'note':<34} |")
    print(f"|{'-' * 26}|{'-' * 52}|{'-' * 22}|{'-' * 36}|")
    for figure, measured, target, note in rows:
        print(f"| {figure:<24} | {measured:<50} | {target:<20} | {note:<34} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
