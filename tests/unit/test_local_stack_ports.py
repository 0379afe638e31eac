"""The local stacks' ports: the suite's stacks run side by side without sharing a port, and stay
below the kernel's ephemeral range, where a client connection's local port can take a port before
Kafka binds it (a CI run once failed so with the README run's Kafka on 49092)."""

import socket
from pathlib import Path

import pytest
import yaml

from lineage_dagster.local_stack import LocalStack, StackConfig, StackError
from lineage_dagster.local_stack.stack import _ephemeral_port_range
from tests.helpers import TEST_PORT_OFFSET
from tests.integration import test_benchmark_smoke, test_dagster_dev, test_readme_run, test_security

ROOT = Path(__file__).parents[2]


def compose_host_ports() -> set[int]:
    """The host ports docker-compose.yml publishes ("127.0.0.1:29092:29092")."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    published = [mapping for service in compose["services"].values() for mapping in service.get("ports", [])]
    return {int(str(mapping).split(":")[-2]) for mapping in published}


def stack_ports(offset: int) -> list[int]:
    return list(StackConfig(data_dir=Path("unused")).shifted(offset, Path("unused")).named_ports().values())


def test_every_port_moves_with_the_offset_and_seaweedfs_grpc_ports_sit_beside_their_http_ports():
    config = StackConfig(data_dir=Path("unused"))
    assert len(set(config.named_ports().values())) == 14
    assert config.s3_grpc_port == config.s3_port + 1 and config.weed_filer_grpc_port == config.weed_filer_port + 1
    assert stack_ports(20000) == [port + 20000 for port in stack_ports(0)]
    assert config.service_ports("kafka") == [9092, 9093, 9094]
    assert sorted(config.service_ports("seaweedfs")) == [8333, 8334, 8335, 9333, 9334, 9340, 9341, 9388, 9389]
    assert config.service_ports("redis") == [6379] and config.service_ports("postgres") == [5432]


def test_the_suites_stacks_share_no_port_with_each_other_or_compose_and_stay_below_the_ephemeral_range():
    ports = [
        *stack_ports(TEST_PORT_OFFSET),
        *stack_ports(test_benchmark_smoke.PORT_OFFSET),
        *stack_ports(test_readme_run.PORT_OFFSET),
        test_readme_run.UI_PORT,
        test_dagster_dev.UI_PORT,
        test_dagster_dev.DG_DEV_PORT,
        test_security.UI_PORT,
    ]
    assert len(set(ports)) == len(ports)
    assert 29092 in compose_host_ports() and not compose_host_ports() & set(ports)
    assert max(ports) < min(_ephemeral_port_range()[0], 32768)


def test_a_port_held_by_a_client_connection_is_reported_before_the_service_starts(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as server, socket.create_connection(server.getsockname()) as client:
        taken = client.getsockname()[1]  # not listening: connecting to it fails, binding to it too
        stack = LocalStack(StackConfig(data_dir=tmp_path, kafka_port=taken))
        with pytest.raises(StackError, match=rf"cannot start kafka: ports \[{taken}\].*--port-offset"):
            stack._spawn("kafka", ["true"], tmp_path)
    assert not (tmp_path / "kafka.pid").exists()
