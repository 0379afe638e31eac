"""The `lineage` command: the local stack, the generator, and reading the commit log."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from lineage_dagster.settings import SettingsError, load_resources

if TYPE_CHECKING:
    from lineage_dagster.clients.s3 import S3ObjectStore
    from lineage_dagster.resources.lake import LakeResource


class UserError(Exception):
    """An error the user can fix; printed without a traceback."""


def _stack(args: argparse.Namespace):  # noqa: ANN202 - a LocalStack
    from lineage_dagster.local_stack import LocalStack, StackConfig

    base = StackConfig(data_dir=args.data_dir)
    return LocalStack(base.shifted(args.port_offset, args.data_dir) if args.port_offset else base)


def cmd_services(args: argparse.Namespace) -> int:
    stack = _stack(args)
    if args.action == "up":
        env = stack.up()
        print(f"Kafka on {env['KAFKA_BOOTSTRAP_SERVERS']}, S3 on {env['AWS_ENDPOINT_URL']} (bucket {stack.config.bucket})")
        print(f"Use it from a shell with: source {stack.data_dir / 'stack.env'}")
    elif args.action == "down":
        stack.down()
        print("local stack stopped")
    elif args.action == "env":
        print("".join(f"export {k}={v}\n" for k, v in stack.env().items()), end="")
    else:
        for name, running in stack.status().items():
            print(f"{name}: {'running' if running else 'stopped'}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from lineage_dagster.generator import produce_events

    kafka = load_resources().kafka
    # Default: 10 msg/s like the seed, or full speed when a --count is given.
    rate = args.rate if args.rate is not None else (None if args.count else 10.0)
    target = f"{args.count} records" if args.count else "records until stopped"
    print(f"producing {target} to {kafka.topic} at {f'{rate:g}/s' if rate else 'full speed'}", flush=True)
    started = time.monotonic()
    sent = produce_events(
        kafka.client_config(),
        kafka.topic,
        rate=rate,
        count=args.count,
        progress=lambda n: print(f"  {n} records", flush=True) if n % 100_000 == 0 else None,
    )
    print(f"produced {sent} records in {time.monotonic() - started:.1f}s")
    return 0


def _ledger() -> tuple[LakeResource, S3ObjectStore]:
    """The lake as the environment configures it, and its store, once the commit log's bucket answers."""
    lake = load_resources().lake
    store = lake.store()
    store.check_bucket(lake.commit_log.bucket)
    return lake, store


def _ms_to_iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def cmd_checkpoints(args: argparse.Namespace) -> int:
    from lineage_dagster.ledger.verify import committed_checkpoints

    lake, store = _ledger()
    markers, uncommitted = committed_checkpoints(store, lake.commit_log)
    if args.json:
        print(json.dumps([json.loads(m.to_json()) for m in markers[-args.limit :]], indent=2))
        return 0
    print(f"{'checkpoint':>10}  {'committed (UTC)':19}  {'records':>9}  {'dropped':>7}  {'files':>5}  run_id")
    for marker in markers[-args.limit :]:
        print(
            f"{marker.checkpoint_id:>10}  {_ms_to_iso(marker.committed_at_ms)}  {marker.record_count:>9}  "
            f"{marker.dropped_count:>7}  {len(marker.files):>5}  {marker.run_id}"
        )
    newest = markers[-1].checkpoint_id if markers else 0
    for checkpoint_id in (i for i in uncommitted if i > newest):
        print(f"{checkpoint_id:>10}  in flight (planned, not committed)")
    return 0


def cmd_files(args: argparse.Namespace) -> int:
    from lineage_dagster.ledger.protocol import read_marker
    from lineage_dagster.ledger.verify import read_checkpoint_rows

    lake, store = _ledger()
    if read_marker(store, lake.commit_log, args.checkpoint_id) is None:
        raise UserError(f"checkpoint {args.checkpoint_id} is not committed in {lake.commit_log}")
    for row in read_checkpoint_rows(store, lake.commit_log, args.checkpoint_id):
        print(
            f"{row.s3_key}  {row.kind}  partition={row.kafka_partition} offsets=[{row.start_offset},{row.end_offset}) "
            f"records={row.record_count} run_id={row.run_id}"
        )
    return 0


def cmd_locate(args: argparse.Namespace) -> int:
    from lineage_dagster.ledger.verify import committed_checkpoints, read_checkpoint_rows

    lake, store = _ledger()
    markers, _ = committed_checkpoints(store, lake.commit_log)
    for marker in markers:
        if any(r.partition == args.partition and r.start <= args.offset < r.end for r in marker.ranges):
            rows = read_checkpoint_rows(store, lake.commit_log, marker.checkpoint_id)
            for row in rows:  # a data and a dead-letter file may share a range; one holds the record
                if row.kafka_partition == args.partition and row.start_offset <= args.offset < row.end_offset:
                    print(f"checkpoint {marker.checkpoint_id} (run {marker.run_id}): {row.s3_key} ({row.kind})")
            return 0
    raise UserError(f"partition {args.partition} offset {args.offset} is in no committed checkpoint yet")


def cmd_verify(args: argparse.Namespace) -> int:
    from lineage_dagster.ledger.verify import verify_ledger

    lake, store = _ledger()
    started = time.monotonic()
    report = verify_ledger(
        store,
        lake.commit_log,
        [lake.output, lake.dropped],
        deep=args.deep,
        progress=None if args.json else lambda message: print(f"  {message}", file=sys.stderr, flush=True),
    )
    elapsed = time.monotonic() - started
    if args.json:
        print(json.dumps({**report.as_dict(), "seconds": round(elapsed, 3)}, indent=2))
    else:
        print(
            f"checkpoints {report.checkpoints}, records {report.records}, dropped {report.dropped}, files {report.files}"
            + (f", rows read {report.rows_read}" if args.deep else "")
            + (f", in flight {report.in_flight}" if report.in_flight else "")
            + f" ({elapsed:.2f}s)"
        )
        for violation in report.violations:
            print(f"VIOLATION {violation}")
        print("OK: every invariant holds" if report.ok else f"FAILED: {len(report.violations)} violations")
    return 0 if report.ok else 1


def _dagster_yaml() -> str:
    return resources.files("lineage_dagster").joinpath("deploy/dagster.yaml").read_text()


# How long Dagster and the generator get to stop after the first signal before they are killed.
CHILDREN_GRACE_S = 10.0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _signal_group(child: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signum)


def _stop_children(children: list[subprocess.Popen]) -> None:
    """Ctrl-C for each child's process group (Dagster's webserver, daemon, code servers and the
    runs they started); whatever is left after the grace period, or after a second signal, is killed."""
    for child in children:
        _signal_group(child, signal.SIGINT)
    deadline = time.monotonic() + CHILDREN_GRACE_S
    try:
        for child in children:
            child.wait(max(deadline - time.monotonic(), 0.1))
    except (KeyboardInterrupt, subprocess.TimeoutExpired):
        pass
    finally:
        for child in children:
            _signal_group(child, signal.SIGKILL)
            child.wait()


def cmd_dev(args: argparse.Namespace) -> int:
    """Everything for a local run: services, generator, and `dg dev` with the schedule on."""
    # A supervisor's `kill` (SIGTERM) or a closed terminal (SIGHUP) stops everything, as Ctrl-C does.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    stack = _stack(args)
    try:
        env = {**os.environ, **stack.up()}
    except BaseException:
        if args.stop_services:
            stack.down()  # do not leave half a stack behind
        raise
    dagster_home = args.data_dir / "dagster-home"
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text(_dagster_yaml())
    env["DAGSTER_HOME"] = str(dagster_home)
    bin_dir = Path(sys.executable).parent
    # Each child leads its own process group, so stopping it reaches everything it started.
    children = [
        subprocess.Popen([str(bin_dir / "lineage"), "generate", "--rate", str(args.rate)], env=env, start_new_session=True),
        subprocess.Popen(
            [str(bin_dir / "dg"), "dev", "-m", "lineage_dagster.definitions", "-h", "127.0.0.1", "-p", str(args.port)],
            env=env,
            start_new_session=True,
        ),
    ]
    print(f"Dagster UI: http://127.0.0.1:{args.port}  (checkpoint_schedule and catch_up_sensor are on; Ctrl-C stops)", flush=True)
    try:
        while all(child.poll() is None for child in children):
            time.sleep(1)
    except KeyboardInterrupt:
        print("stopping Dagster and the generator (a second Ctrl-C or signal kills them at once)", flush=True)
    finally:
        _stop_children(children)
        if args.stop_services:
            try:
                stack.down()
            except KeyboardInterrupt:
                stack.down(grace_s=0)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from lineage_dagster.local_stack.stack import default_data_dir

    parser = argparse.ArgumentParser(prog="lineage", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def stack_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-dir", type=Path, default=default_data_dir(), help="where the local services keep data")
        p.add_argument("--port-offset", type=int, default=0, help="shift every local service port by this much")

    services = sub.add_parser("services", help="start, stop or inspect the local Kafka and S3")
    services.add_argument("action", choices=["up", "down", "status", "env"])
    stack_options(services)
    services.set_defaults(func=cmd_services)

    dev = sub.add_parser("dev", help="services + generator + Dagster UI with the schedule on")
    stack_options(dev)
    dev.add_argument("--port", type=int, default=3000, help="Dagster UI port (bound to 127.0.0.1)")
    dev.add_argument("--rate", type=float, default=10.0, help="generator records per second")
    dev.add_argument("--stop-services", action="store_true", help="stop Kafka and S3 on exit")
    dev.set_defaults(func=cmd_dev)

    generate = sub.add_parser("generate", help="produce seed-schema Avro records to KAFKA_TOPIC")
    generate.add_argument("--rate", type=float, default=None, help="records per second (default 10; full speed with --count)")
    generate.add_argument("--count", type=int, default=None, help="produce this many records, then stop")
    generate.set_defaults(func=cmd_generate)

    checkpoints = sub.add_parser("checkpoints", help="list committed checkpoints")
    checkpoints.add_argument("--limit", type=int, default=20)
    checkpoints.add_argument("--json", action="store_true")
    checkpoints.set_defaults(func=cmd_checkpoints)

    files = sub.add_parser("files", help="the files a checkpoint committed")
    files.add_argument("checkpoint_id", type=int)
    files.set_defaults(func=cmd_files)

    locate = sub.add_parser("locate", help="which checkpoint and file hold a Kafka record")
    locate.add_argument("--partition", type=int, required=True)
    locate.add_argument("--offset", type=int, required=True)
    locate.set_defaults(func=cmd_locate)

    verify = sub.add_parser("verify", help="check the exactly-once invariants from the commit log")
    verify.add_argument("--deep", action="store_true", help="also read every Parquet file and check each record")
    verify.add_argument("--json", action="store_true", help="machine-readable report")
    verify.set_defaults(func=cmd_verify)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (UserError, SettingsError) as error:
        print(f"lineage: {error}", file=sys.stderr)
        return 2
    except RuntimeError as error:
        # Our service errors (StackError, S3AccessError, KafkaAccessError) say what to fix.
        if type(error).__module__.startswith("lineage_dagster"):
            print(f"lineage: {error}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
