#!/usr/bin/env python3
"""Throughput, memory and overhead figures on the real services, printed as one table.

    .venv/bin/python benchmarks/run.py                     # 1M records: about 2 minutes
    .venv/bin/python benchmarks/run.py --backlog 10000000  # also drain a 10M backlog, verify --deep it
    .venv/bin/python benchmarks/run.py --sustained 300     # also 50,000 msg/s for 5 minutes, real schedule
    .venv/bin/python benchmarks/run.py --large-records 1200  # also drain 1200 MiB of 900 KB bad records
    .venv/bin/python benchmarks/run.py --rounds 7          # medians of 7 rounds instead of 3: less noise

Brings up its own Kafka + S3 (ports 15000 above the defaults, data in /tmp/lineage-bench) and stops
them at the end. Not part of the test suite; docs/benchmarks.md keeps the latest table.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import mmap
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata, resources
from itertools import pairwise
from pathlib import Path

import numpy as np
from confluent_kafka import Message, Producer
from dagster import AssetKey, DagsterInstance, RunsFilter

from lineage_dagster.clients.kafka import BATCH_SIZE, CONSUME_SIZE, KafkaRecordSource
from lineage_dagster.clients.s3 import S3ObjectStore, make_s3_client
from lineage_dagster.generator import produce_events
from lineage_dagster.ingest.bulk_decode import decode_batch
from lineage_dagster.ingest.subtask import write_subtask_files
from lineage_dagster.ingest.worker_service import WorkerServiceUnavailable, check_worker_service
from lineage_dagster.ledger.paths import S3Location
from lineage_dagster.ledger.plan import PartitionRange, plan_checkpoint
from lineage_dagster.local_stack import LocalStack, StackConfig
from lineage_dagster.resources import build_resources
from lineage_dagster.settings import load_settings

BIN = Path(sys.executable).parent
HERE = Path(__file__).parent
CORES = os.cpu_count() or 1
TICK_S = 1 / os.sysconf("SC_CLK_TCK")
CPU_SAMPLE_S = 0.02

Row = tuple[str, str, str, str]  # a line of the printed table: figure, measured, target, ratio


def _busy_ticks() -> int:
    """Clock ticks all the machine's cores together spent running anything since boot: not idle,
    not waiting for I/O, not stolen by the host."""
    user, nice, system, _idle, _iowait, irq, softirq = map(int, Path("/proc/stat").read_text().split(maxsplit=8)[1:8])
    return user + nice + system + irq + softirq


def _stat_fields(pid: int | str) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name (which may hold spaces): state, ppid, ..."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _process_ticks(pid: int) -> tuple[int, int]:
    """CPU ticks of a process (all its threads), and of its children it has waited for."""
    fields = _stat_fields(pid)
    return int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])


@dataclass
class CpuSample:
    at: float  # time.time(), the clock the pipeline stamps its plans and commits with
    ticks: tuple[int, ...]  # the machine's busy ticks, then each part's (WINDOW_PARTS order)


# Where a checkpoint window's CPU goes. The run process waits for its forked subtask workers
# before it commits, so its waited-for children's ticks hold every worker's CPU by the window's end;
# with the worker service, its processes write the subtasks instead.
WINDOW_PARTS = ("run process", "forked workers", "worker service", "Kafka", "SeaweedFS")


def _tree_ticks(pids: tuple[int, ...]) -> int:
    """CPU ticks of the given processes and of the children they have waited for."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            total += sum(_process_ticks(pid))
    return total


def _cpu_sample(run_pid: int, service_pids: tuple[int, int], worker_service: tuple[int, ...]) -> CpuSample:
    at = time.time()
    own, children = _process_ticks(run_pid)
    services = (_process_ticks(pid)[0] for pid in service_pids)
    return CpuSample(at, (_busy_ticks(), own, children, _tree_ticks(worker_service), *services))


def _interpolated(timeline: list[CpuSample], moment: float) -> list[float] | None:
    for before, after in pairwise(timeline):
        if before.at <= moment <= after.at:
            share = (moment - before.at) / (after.at - before.at) if after.at > before.at else 0.0
            return [a + (b - a) * share for a, b in zip(before.ticks, after.ticks, strict=True)]
    return None


def window_cpu(timeline: list[CpuSample], start: float, end: float) -> dict[str, float] | None:
    """Core-seconds the machine, and each part of the pipeline, used from `start` to `end`; None
    if the timeline does not cover that span."""
    first, last = _interpolated(timeline, start), _interpolated(timeline, end)
    if first is None or last is None:
        return None
    machine, *parts = ((b - a) * TICK_S for a, b in zip(first, last, strict=True))
    used = dict(zip(WINDOW_PARTS, parts, strict=True))
    return {"machine": machine, **used, "other": machine - sum(used.values())}


@dataclass
class ProcessRun:
    wall_s: float
    cpu_s: float  # user + system
    peak_rss_mib: int  # of the process and its children together
    minor_faults: int  # pages the process touched for the first time (it has no swap or file reads to speak of)
    output: str
    cpu_timeline: list[CpuSample] = field(default_factory=list)  # when services were watched
    peak_pss_mib: int | None = None  # sampled only when services were not watched


def _process_tree(root: int) -> list[int]:
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


def _high_water_bytes(pid: int) -> int:
    """The process's peak RSS so far (VmHWM), 0 once it has ended."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _resident_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * mmap.PAGESIZE
        except (OSError, IndexError):
            continue
    return total


def _minor_faults(pids: tuple[int, ...]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = _stat_fields(pid)
            total += int(fields[7]) + int(fields[8])  # its own, and its waited-for children's
    return total


def _proportional_bytes(pids: list[int]) -> int:
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


def timed_process(
    args: list[str], env: dict[str, str], services: tuple[int, int] | None = None, worker_service: tuple[int, ...] = ()
) -> ProcessRun:
    """Wall and CPU seconds (of the process and its children), peak RSS and output of a command;
    with the pids of Kafka and SeaweedFS as `services`, also a timeline of where the CPU went.
    With the pids of a worker service (idle but for the runs measured here), what it spends while
    the command runs counts as the command's: CPU, fresh pages and memory.

    The peak RSS is the higher of the process's own high-water mark and the highest sum over the
    process, its children (subtask workers) and the worker service, sampled every 0.1 s; pages a
    worker shares with its parent count in both, so the sum is an upper bound. Unless the CPU is
    watched (reading smaps_rollup costs milliseconds per process), the peak of their PSS summed is
    sampled too, every 0.3 s: shared pages counted once. Not `ru_maxrss`: Linux records at
    `exec` the peak of the address space being replaced, so a child's starts at its parent's, and
    this process's own peak (over 1 GiB after producing the large records) stood in for the run's."""
    service_cpu, service_faults = _tree_ticks(worker_service), _minor_faults(worker_service)
    started = time.perf_counter()
    process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak_tree = peak_own = peak_pss = 0
    timeline: list[CpuSample] = []
    exited = threading.Event()

    def sample_tree() -> None:
        nonlocal peak_tree, peak_own, peak_pss
        samples = 0
        while not exited.wait(CPU_SAMPLE_S if services else 0.1):
            if services:
                with contextlib.suppress(OSError):  # the command has been waited for
                    timeline.append(_cpu_sample(process.pid, services, worker_service))
            if not services or samples % 5 == 0:
                pids = [*_process_tree(process.pid), *worker_service]
                peak_tree = max(peak_tree, _resident_bytes(pids))
                if not services and samples % 3 == 0:
                    peak_pss = max(peak_pss, _proportional_bytes(pids))
            peak_own = max(peak_own, _high_water_bytes(process.pid))
            samples += 1

    sampler = threading.Thread(target=sample_tree, daemon=True)
    sampler.start()
    output = process.stdout.read() if process.stdout else ""
    _, status, usage = os.wait4(process.pid, 0)
    exited.set()
    sampler.join()
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{output[-3000:]}")
    peak_mib = max(peak_own, peak_tree) >> 20
    service_cpu_s = (_tree_ticks(worker_service) - service_cpu) * TICK_S
    faults = usage.ru_minflt + _minor_faults(worker_service) - service_faults
    cpu_s = usage.ru_utime + usage.ru_stime + service_cpu_s
    return ProcessRun(elapsed, cpu_s, peak_mib, faults, output, timeline, None if services else peak_pss >> 20)


@dataclass
class RawRead:
    seconds: float
    cpu_s: float  # of the consumer: this process, librdkafka's threads included
    machine_core_s: float  # all processes, Kafka's included
    kafka_core_s: float
    values: list[bytes]  # the payloads of the untimed read, if there was one


def raw_consume(bootstrap: str, topic: str, total: int, kafka_pid: int, passes: int = 3, *, warm_up: bool = True) -> RawRead:
    """The ceiling: the pipeline's own consumer (its fetch tuning) and consume size, touching each
    message's value, partition and offset, with the cyclic GC paused as the pipeline does.

    Medians of `passes` reads, after one untimed read when `warm_up` (the broker's JVM is fresh and
    its first large fetches run slower), which also collects the payloads for the decode figure."""
    source = KafkaRecordSource({"bootstrap.servers": bootstrap}, topic)
    everything = [PartitionRange(p, low, high) for p, (low, high) in source.watermarks().items()]
    timings: list[tuple[float, float, float, float]] = []
    values: list[bytes] = []
    for timed in ([False] if warm_up else []) + [True] * passes:
        consumer = source.start_reading(everything)
        seen = 0
        gc.disable()
        busy, kafka = _busy_ticks(), _process_ticks(kafka_pid)[0]
        started, cpu = time.perf_counter(), time.process_time()
        while seen < total:
            messages = consumer.consume(min(CONSUME_SIZE, total - seen), timeout=1)
            payloads = list(map(Message.value, messages))
            sum(map(Message.partition, messages))
            sum(map(Message.offset, messages))
            seen += len(messages)
            if not timed:
                values.extend(payloads)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        busy, kafka = (_busy_ticks() - busy) * TICK_S, (_process_ticks(kafka_pid)[0] - kafka) * TICK_S
        gc.enable()
        consumer.close()
        if timed:
            timings.append((elapsed, cpu, busy, kafka))
    seconds, cpu_s, machine_core_s, kafka_core_s = (statistics.median(column) for column in zip(*timings, strict=True))
    return RawRead(seconds, cpu_s, machine_core_s, kafka_core_s, values)


def first_touch_cost_s(mib: int = 256) -> float:
    """CPU seconds per 4 KiB page the kernel maps and zeroes on first touch, at this hour: on this
    VM it varies several-fold, and a fresh run process touches a few hundred MB."""
    region = mmap.mmap(-1, mib << 20)
    started = time.process_time()
    np.frombuffer(region, dtype=np.uint8)[:: mmap.PAGESIZE] = 1
    cost = (time.process_time() - started) / ((mib << 20) // mmap.PAGESIZE)
    region.close()
    return cost


def parquet_modules_load_cpu_s(env: dict[str, str]) -> float:
    """CPU seconds a run process spends loading the Parquet path (polars, numpy) once Dagster and
    the definitions are loaded, as a checkpoint with data does."""
    code = (
        "import time, lineage_dagster.definitions\n"
        "from lineage_dagster.assets.checkpoint import _preload_subtask_module\n"
        "started = time.process_time(); _preload_subtask_module(); print(time.process_time() - started)"
    )
    return float(subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True).stdout)


STEP_TIME = re.compile(r'Finished execution of step "checkpoint\.(\w+)" in ([\d.]+m?s)')


def checkpoint(
    env: dict[str, str], services: tuple[int, int] | None = None, worker_service: tuple[int, ...] = ()
) -> tuple[ProcessRun, dict]:
    command = [str(BIN / "dagster"), "job", "execute", "-m", "lineage_dagster.definitions", "-j", "checkpoint_job"]
    run = timed_process(command, env, services, worker_service)
    commits = commit_metadata(Path(env["DAGSTER_HOME"]), limit=1)
    return run, commits[0] if commits else {}


def commit_metadata(home: Path, limit: int = 10_000) -> list[dict]:
    """Metadata of the newest `limit` commit-log materializations in a Dagster home, newest first."""
    instance = DagsterInstance.from_config(str(home))
    try:
        records = instance.fetch_materializations(AssetKey("write_ahead_commit_log"), limit=limit).records
        return [{k: v.value for k, v in r.asset_materialization.metadata.items()} for r in records if r.asset_materialization]
    finally:
        instance.dispose()


def decode_rate(values: list[bytes], batch: int = BATCH_SIZE) -> float:
    """Rows/s decoding in the batches the pipeline decodes, median of 3 passes."""
    decode_batch(values[:1000], 1 << 20)  # warm up imports
    rates = []
    for _ in range(3):
        started = time.perf_counter()
        decoded = sum(len(decode_batch(values[i : i + batch], 1 << 20).indexes) for i in range(0, len(values), batch))
        rates.append(len(values) / (time.perf_counter() - started))
        assert decoded == len(values)
    return statistics.median(rates)


def warm_data_path(env: dict[str, str], records: int, passes: int = 3) -> tuple[float, float]:
    """Records/s and records per CPU-second of the subtasks' work (read, decode, Parquet, S3 put) on
    `records` records in this already warm process, the steps' read-ahead included; medians.

    A checkpoint run is a fresh process that also pays for starting Python, Dagster and polars;
    this is what each further million costs a process that is already running."""
    settings = load_settings(env)
    kafka = build_resources(settings)["kafka"]
    source = kafka.record_source()
    watermarks = source.watermarks()
    plan = plan_checkpoint(
        checkpoint_id=1,
        topic=settings.kafka_topic,
        hour=datetime.now(UTC),
        committed_ends={p: 0 for p in watermarks},
        watermarks=watermarks,
        max_records=records,
        parallelism=settings.parallelism,
        run_id="benchmark",
        planned_at_ms=0,
        allow_offset_loss=False,
    )
    store = S3ObjectStore(make_s3_client(settings.s3))
    scratch = S3Location(settings.output.bucket, f"{settings.output.prefix}-warm-data-path")
    rates, per_cpu = [], []
    for _ in range(passes):
        started, cpu = time.perf_counter(), time.process_time()
        kafka.start_reading(plan.ranges_for_subtask(0))
        for subtask in range(plan.parallelism):
            if subtask + 1 < plan.parallelism:
                kafka.start_reading(plan.ranges_for_subtask(subtask + 1))
            write_subtask_files(
                plan=plan,
                subtask=subtask,
                source=kafka,
                store=store,
                output=scratch,
                dropped=scratch,
                max_record_bytes=settings.max_record_bytes,
            )
        rates.append(plan.record_count / (time.perf_counter() - started))
        per_cpu.append(plan.record_count / (time.process_time() - cpu))
    return statistics.median(rates), statistics.median(per_cpu)


def sustained(stack: LocalStack, data_dir: Path, seconds: int, rate: int, worker_socket: str) -> list[Row]:
    """The generator at `rate` for `seconds` while the Dagster daemon runs the real schedule and sensor."""
    topic = f"sustained-{uuid.uuid4().hex[:8]}"
    stack.create_topic(topic, 10)
    home = data_dir / f"dagster-{topic}"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(resources.files("lineage_dagster").joinpath("deploy/dagster.yaml").read_text())
    env = {**os.environ, **stack.pipeline_env(topic), "DAGSTER_HOME": str(home), "SUBTASK_WORKER_SOCKET": worker_socket}
    with (home / "daemon.log").open("w") as daemon_log:
        daemon = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-m", "lineage_dagster.definitions"],
            env=env,
            stdout=daemon_log,
            stderr=subprocess.STDOUT,
        )
        try:
            print(f"sustained: {rate:,} msg/s for {seconds} s with the schedule and catch-up sensor...", flush=True)
            started = time.monotonic()
            generate = [str(BIN / "lineage"), "generate", "--rate", str(rate), "--count", str(rate * seconds)]
            subprocess.run(generate, env=env, check=True, stdout=subprocess.DEVNULL)
            produced_s = time.monotonic() - started
            source = KafkaRecordSource({"bootstrap.servers": env["KAFKA_BOOTSTRAP_SERVERS"]}, topic)
            total = sum(high for _, high in source.watermarks().values())
            deadline = time.monotonic() + 300
            while sum(c["records"] for c in commit_metadata(home)) < total and time.monotonic() < deadline:
                time.sleep(5)
        finally:
            daemon.send_signal(signal.SIGINT)
            daemon.wait(60)
    commits = commit_metadata(home)
    instance = DagsterInstance.from_config(str(home))
    runs = [r for r in instance.get_run_records(RunsFilter(job_name="checkpoint_job")) if r.end_time and r.start_time]
    instance.dispose()
    committed = sum(c["records"] for c in commits)
    cap = int(env.get("MAX_RECORDS_PER_CHECKPOINT", "1000000"))
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
        (
            "sustained lag",
            f"worst lag after a commit {worst_lag:,}",
            "< one checkpoint's worth",
            f"{worst_lag / cap:.2f}x MAX_RECORDS_PER_CHECKPOINT",
        ),
    ]


def large_records_drain(
    stack: LocalStack, data_dir: Path, mib: int, worker_socket: str, worker_service: tuple[int, ...], size: int = 900_000
) -> Row:
    """A backlog of `mib` MiB of undecodable payloads (random bytes, `size` each): the run's memory
    must stay bounded by SUBTASK_BUFFER_BYTES, not grow with the backlog."""
    topic = f"large-{uuid.uuid4().hex[:8]}"
    stack.create_topic(topic, 10)
    home = data_dir / f"dagster-{topic}"
    home.mkdir(parents=True)
    env = {**os.environ, **stack.pipeline_env(topic), "DAGSTER_HOME": str(home), "SUBTASK_WORKER_SOCKET": worker_socket}
    count = (mib << 20) // size
    print(f"producing {count:,} undecodable records of {size:,} bytes...", flush=True)
    producer = Producer({"bootstrap.servers": env["KAFKA_BOOTSTRAP_SERVERS"], "linger.ms": 50})
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
        run, meta = checkpoint(env, worker_service=worker_service)
        if not meta.get("dropped_records"):
            raise RuntimeError(f"a checkpoint of {topic} committed no dead-letter records:\n{run.output[-3000:]}")
        runs.append(run)
        dropped, files = dropped + meta["dropped_records"], files + meta["files"]
    return (
        "memory, large bad records",
        peak_memory(runs),
        "<= 1024 MiB (PSS)",
        f"{count:,} x {size // 1000} KB ({mib:,} MiB) in {files} files, {time.perf_counter() - started:.0f} s",
    )


def peak_memory(runs: list[ProcessRun]) -> str:
    pss = max(r.peak_pss_mib or 0 for r in runs)
    return f"{pss} MiB PSS, all processes ({max(r.peak_rss_mib for r in runs)} RSS summed)"


@contextlib.contextmanager
def worker_service(env: dict[str, str], data_dir: Path) -> Iterator[tuple[dict[str, str], tuple[int, ...]]]:
    """`lineage workers` as `lineage dev` and the compose deployment run it: the env that points
    runs at it, and the pids of its processes."""
    socket = data_dir / "workers.sock"
    log_path = data_dir / "worker-service.log"
    with log_path.open("w") as log:
        process = subprocess.Popen([str(BIN / "lineage"), "workers", "--socket", str(socket)], env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                check_worker_service(socket)
                break
            except WorkerServiceUnavailable:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the worker service did not start:\n{log_path.read_text()[-3000:]}") from None
                time.sleep(0.2)
        yield {**env, "SUBTASK_WORKER_SOCKET": str(socket)}, tuple(_process_tree(process.pid))
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


def service_pid(stack: LocalStack, name: str) -> int:
    pid = stack.running_pid(name)
    if pid is None:
        raise RuntimeError(f"{name} is not running after the stack came up; see {stack.data_dir / name}.log")
    return pid


def window_cpu_rows(fulls: list[tuple[ProcessRun, dict]], raws: list[RawRead]) -> list[Row]:
    """What bounds the pipeline's ratio to raw consume on this machine: the CPU its window used,
    all processes together, against the CPU of the raw read paired with it. A window cannot be
    shorter than its CPU spread over every core, so raw seconds / (window core-s / cores) is the
    best ratio this much work can reach here. Figures of the round with the median bound."""
    rounds = []
    for (run, meta), raw in zip(fulls, raws, strict=True):
        start = meta["planned_at"]
        used = window_cpu(run.cpu_timeline, start, start + meta["duration_s"])
        if used is not None and used["machine"] > 0:
            rounds.append((raw.seconds / (used["machine"] / CORES), meta["duration_s"], used, raw))
    if not rounds:
        return [("CPU of the 1M window", "n/a: no CPU samples cover the window", "", "")]
    bound, window_s, used, raw = sorted(rounds, key=lambda r: r[0])[len(rounds) // 2]
    parts = ", ".join(f"{part} {used[part]:.2f}" for part in (*WINDOW_PARTS, "other"))
    raw_other = raw.machine_core_s - raw.cpu_s - raw.kafka_core_s
    raw_busy = raw.machine_core_s / (raw.seconds * CORES)
    return [
        (
            "CPU of the 1M window",
            f"{used['machine']:.2f} core-s in {window_s:.2f} s ({used['machine'] / (window_s * CORES):.0%} of {CORES} cores)",
            "",
            parts,
        ),
        (
            "CPU of its raw read",
            f"{raw.machine_core_s:.2f} core-s in {raw.seconds:.2f} s ({raw_busy:.0%} of {CORES} cores)",
            "",
            f"consumer {raw.cpu_s:.2f}, Kafka {raw.kafka_core_s:.2f}, other {raw_other:.2f}",
        ),
        (
            "pipeline bound by CPU",
            f"window >= {used['machine'] / CORES:.2f} s: its core-s / {CORES} cores",
            ">= 0.6x raw",
            f"<= {bound:.3f}x paired raw",
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--backlog", type=int, default=0, help="also drain a backlog of this many records")
    parser.add_argument(
        "--sustained", type=int, default=0, metavar="SECONDS", help="also run the real schedule under load this long"
    )
    parser.add_argument("--rate", type=int, default=50_000, help="records/s of the sustained load")
    parser.add_argument(
        "--large-records", type=int, default=0, metavar="MIB", help="also drain this many MiB of 900 KB undecodable records"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds of the 1M (worker service and forked workers), empty, trivial and 100-record runs whose medians "
        "are printed (more: less noise)",
    )
    parser.add_argument("--port-offset", type=int, default=15000)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/lineage-bench"))
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

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
    trivial_job = [str(BIN / "dagster"), "job", "execute", "-f", str(HERE / "trivial_job.py"), "-j", "trivial_job"]
    rows: list[Row] = []
    exits = contextlib.ExitStack()
    try:
        # The runs hand their subtasks to a worker service, as in `lineage dev` and the compose
        # deployment; each round also runs a checkpoint whose workers the run forks itself.
        forked_env = env
        env, service_pids = exits.enter_context(worker_service(env, args.data_dir))
        print(f"producing {args.records} records...", flush=True)
        produce_events({"bootstrap.servers": bootstrap}, topic, rate=None, count=args.records)

        services = (service_pid(stack, "kafka"), service_pid(stack, "seaweedfs"))
        raw = raw_consume(bootstrap, topic, args.records, services[0])
        raw_rate = args.records / raw.seconds
        rows.append(("raw consume", f"{raw_rate:,.0f} records/s", "baseline", f"{args.records / raw.cpu_s:,.0f}/CPU-s"))

        rate = decode_rate(raw.values)
        rows.append(("decode stage", f"{rate:,.0f} rows/s", ">= 4,000,000 rows/s", f"{rate / 4e6:.2f}x target"))
        raw.values.clear()
        warm_rate, warm_per_cpu = warm_data_path(env, args.records)

        # A deployed instance already has its SQLite storage: create it (and warm the imports) first.
        timed_process(trivial_job, env)
        # The machine is shared and noisy: --rounds rounds of a 1M checkpoint, a no-op run and the
        # yardstick job, medians kept (a new million is produced before each later round).
        # A tiny checkpoint (100 records) separates what any run with data costs from what each
        # record costs.
        # Each round's checkpoint is also paired with a raw read just before it, so that its ratio
        # to raw consume compares the two under the same load of the shared machine.
        fulls: list[tuple[ProcessRun, dict]] = []
        forkeds: list[tuple[ProcessRun, dict]] = []
        empties, trivials, tinies, paired_raws, forked_raws = [], [], [], [], []
        for round_number in range(args.rounds):
            if round_number:
                produce_events({"bootstrap.servers": bootstrap}, topic, rate=None, count=args.records)
            paired_raws.append(raw_consume(bootstrap, topic, args.records, services[0], passes=1, warm_up=False))
            fulls.append(checkpoint(env, services, service_pids))
            produce_events({"bootstrap.servers": bootstrap}, topic, rate=None, count=args.records)
            forked_raws.append(raw_consume(bootstrap, topic, args.records, services[0], passes=1, warm_up=False))
            forkeds.append(checkpoint(forked_env, services))
            empties.append(checkpoint(env, worker_service=service_pids)[0])
            trivials.append(timed_process(trivial_job, env))
            produce_events({"bootstrap.servers": bootstrap}, topic, rate=None, count=100)
            tinies.append(checkpoint(env, worker_service=service_pids)[0])
        full, meta = sorted(fulls, key=lambda run: run[0].wall_s)[len(fulls) // 2]
        empty_wall = statistics.median(r.wall_s for r in empties)
        trivial_wall = statistics.median(r.wall_s for r in trivials)
        # CPU a checkpoint run took beyond a run with nothing to do, per million records.
        extra_cpu = statistics.median(r.cpu_s for r, _ in fulls) - statistics.median(r.cpu_s for r in empties)
        per_core = meta["records"] / max(extra_cpu, 1e-3)
        pipeline_rate = statistics.median(m["records"] / m["duration_s"] for _, m in fulls)
        paired_raw_s = [r.seconds for r in paired_raws]
        paired_ratio = statistics.median(raw_s / m["duration_s"] for raw_s, (_, m) in zip(paired_raw_s, fulls, strict=True))
        rows.append(
            (
                "pipeline rate",
                f"{pipeline_rate:,.0f} records/s (median of {args.rounds} x {meta['records']:,})",
                ">= 0.6x raw, >= 400k/s/core",
                f"{pipeline_rate / raw_rate:.3f}x raw ({paired_ratio:.3f}x paired); {per_core:,.0f}/CPU-s",
            )
        )
        rows.append(
            (
                "raw consume, paired",
                f"{args.records / statistics.median(paired_raw_s):,.0f} records/s (median of {args.rounds})",
                "",
                "a read right before each checkpoint",
            )
        )
        forked_rate = statistics.median(m["records"] / m["duration_s"] for _, m in forkeds)
        forked_ratio = statistics.median(r.seconds / m["duration_s"] for r, (_, m) in zip(forked_raws, forkeds, strict=True))
        forked_extra_cpu = statistics.median(r.cpu_s for r, _ in forkeds) - statistics.median(r.cpu_s for r in empties)
        forked_per_core = meta["records"] / max(forked_extra_cpu, 1e-3)
        rows.append(
            (
                "pipeline, forked workers",
                f"{forked_rate:,.0f} records/s (median of {args.rounds})",
                "(no worker service)",
                f"{forked_ratio:.3f}x paired; {forked_per_core:,.0f}/CPU-s",
            )
        )
        rows.extend(window_cpu_rows(fulls, paired_raws))
        rows.append(
            (
                "data path, warm process",
                f"{warm_rate:,.0f} records/s (median of 3)",
                ">= 400k/s/core",
                f"{warm_per_cpu:,.0f}/CPU-s",
            )
        )
        # What bounds the per-CPU-second figure of a run: a cost every run with data pays once, and
        # the records' own cost in a fresh process (the warm data path plus first-touched memory).
        tiny_cpu = statistics.median(r.cpu_s for r in tinies)
        fixed_cpu = tiny_cpu - statistics.median(r.cpu_s for r in empties)
        records_cpu = statistics.median(r.cpu_s for r, _ in fulls) - tiny_cpu
        # A small --records (the smoke test's) can cost no more CPU than the 100-record run.
        records_rate = f"{meta['records'] / records_cpu:,.0f}/CPU-s" if records_cpu > 0 else "n/a: within the noise"
        fresh_pages = statistics.median(r.minor_faults for r, _ in fulls) - statistics.median(r.minor_faults for r in tinies)
        page_cost = first_touch_cost_s()
        rows.append(
            (
                "run with data, fixed",
                f"{fixed_cpu:.2f} CPU-s (100-record run - empty run)",
                "",
                f"polars+numpy load {parquet_modules_load_cpu_s(env):.2f} CPU-s",
            )
        )
        rows.append(
            (
                "records in a fresh run",
                f"{records_rate} (full run - 100-record run)",
                ">= 400k/s/core",
                f"{fresh_pages:,} new pages x {page_cost * 1e6:.1f} us = {fresh_pages * page_cost:.2f} CPU-s",
            )
        )
        rows.append(
            (
                "checkpoint by CLI",
                f"{full.wall_s:.2f} s wall (median of {args.rounds})",
                "<= empty + 3 s",
                f"empty + {full.wall_s - empty_wall:.2f} s",
            )
        )
        rows.append(
            (
                "empty checkpoint",
                f"{empty_wall:.2f} s wall (median of {args.rounds})",
                "<= 1.5x trivial job",
                f"{empty_wall / trivial_wall:.2f}x ({trivial_wall:.2f} s)",
            )
        )
        steps = ", ".join(f"{name} {took}" for name, took in STEP_TIME.findall(full.output))
        peak_1m = max(r.peak_rss_mib for r, _ in fulls)
        rows.append(("memory, 1M checkpoint", f"{peak_1m} MiB peak RSS, all processes (max of {args.rounds})", "<= 1024 MiB", ""))

        if args.backlog:
            print(f"producing a backlog of {args.backlog} records...", flush=True)
            produce_events({"bootstrap.servers": bootstrap}, topic, rate=None, count=args.backlog)
            high = sum(h for _, h in KafkaRecordSource({"bootstrap.servers": bootstrap}, topic).watermarks().values())
            drains, drained, started = [], 0, time.perf_counter()
            while True:
                run, meta = checkpoint(env, worker_service=service_pids)
                drains.append(run)
                drained += meta["records"]
                print(f"  checkpoint {meta['checkpoint_id']}: {meta['records']} records, {peak_memory([run])}", flush=True)
                if meta["lag_after_commit"] == 0 or sum(meta["end_offsets"].values()) >= high:
                    break
            backlog_s = time.perf_counter() - started
            rows.append(
                (
                    "memory, backlog drain",
                    peak_memory(drains),
                    "<= 1024 MiB (PSS)",
                    f"{drained:,} records in {backlog_s:.0f} s",
                )
            )
            verify = timed_process([str(BIN / "lineage"), "verify", "--deep"], env)
            total_rows = high  # everything produced, all committed by now
            rows.append(
                (
                    "verify --deep",
                    f"{total_rows / verify.wall_s:,.0f} rows/s ({total_rows:,} rows)",
                    ">= 2,000,000 rows/s",
                    verify.output.strip().splitlines()[-1],
                )
            )
        socket = env["SUBTASK_WORKER_SOCKET"]
        if args.large_records:
            rows.append(large_records_drain(stack, args.data_dir, args.large_records, socket, service_pids))
        if args.sustained:
            rows.extend(sustained(stack, args.data_dir, args.sustained, args.rate, socket))
    finally:
        exits.close()
        stack.down()

    versions = ", ".join(f"{p} {metadata.version(p)}" for p in ("dagster", "confluent-kafka", "polars", "numpy"))
    print()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; {versions}")
    print(f"| {'figure':<23} | {'measured':<44} | {'target':<28} | {'ratio':<30} |")
    print(f"|{'-' * 25}|{'-' * 46}|{'-' * 30}|{'-' * 32}|")
    for figure, measured, target, ratio in rows:
        print(f"| {figure:<23} | {measured:<44} | {target:<28} | {ratio:<30} |")
    print(f"\nsteps of the median 1M checkpoint run: {steps}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
