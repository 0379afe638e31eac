from dagster import ConfigurableResource

from lineage_dagster.clients.kafka import KafkaRecordSource
from lineage_dagster.settings import KafkaSecurity


class KafkaResource(ConfigurableResource):
    """The source topic. `sasl_password` should be an EnvVar so it is never stored in run config."""

    bootstrap_servers: str
    topic: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_ca_location: str | None = None

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
