from collections.abc import Iterator, Sequence

from confluent_kafka import Consumer
from dagster import ConfigurableResource, InitResourceContext
from pydantic import PrivateAttr

from lineage_dagster.clients.kafka import KafkaRecordSource, RecordBatch
from lineage_dagster.ledger.plan import PartitionRange
from lineage_dagster.settings import KafkaSecurity


def _reads_key(ranges: Sequence[PartitionRange]) -> tuple[PartitionRange, ...]:
    """The same ranges in any order are the same reads."""
    return tuple(sorted(ranges))


class KafkaResource(ConfigurableResource):
    """The source topic. `sasl_password` should be an EnvVar so it is never stored in run config."""

    bootstrap_servers: str
    topic: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_ca_location: str | None = None

    # Consumers started ahead of the step that reads their ranges, in this process.
    _started: dict[tuple[PartitionRange, ...], Consumer] = PrivateAttr(default_factory=dict)

    def client_config(self) -> dict[str, str]:
        security = KafkaSecurity(
            protocol=self.security_protocol,
            sasl_mechanism=self.sasl_mechanism,
            sasl_username=self.sasl_username,
            sasl_password=self.sasl_password,
            ssl_ca_location=self.ssl_ca_location,
        )
        return {"bootstrap.servers": self.bootstrap_servers, **security.client_config()}

    def record_source(self) -> KafkaRecordSource:
        return KafkaRecordSource(self.client_config(), self.topic)

    def start_reading(self, ranges: Sequence[PartitionRange]) -> None:
        """Start fetching `ranges` now, for a later `read_ranges` of the same ranges in this process.

        With the in-process executor the steps run one after another; a step started this way
        finds its first records already fetched by librdkafka's threads while the step before ran.
        """
        key = _reads_key(ranges)
        if key not in self._started:
            self._started[key] = self.record_source().start_reading(key)

    def is_reading(self, ranges: Sequence[PartitionRange]) -> bool:
        return _reads_key(ranges) in self._started

    def read_ranges(self, ranges: Sequence[PartitionRange]) -> Iterator[RecordBatch]:
        started = self._started.pop(_reads_key(ranges), None)
        return self.record_source().read_ranges(ranges, started=started)

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        while self._started:  # started for a step that never ran here (a failure, another process)
            self._started.popitem()[1].close()
