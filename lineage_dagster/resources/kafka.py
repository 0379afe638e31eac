"""The source: which Kafka cluster and topic, and how to authenticate to it."""

from typing import Literal

from dagster import ConfigurableResource
from pydantic import Field, field_validator

from lineage_dagster.clients.kafka import KafkaRecordSource
from lineage_dagster.resources.secrets import resolved


class KafkaResource(ConfigurableResource):
    """The Kafka topic the pipeline reads."""

    bootstrap_servers: str = Field(default="kafka:9092", description="Kafka brokers, host:port[,host:port]")
    topic: str = Field(default="lineage-input", description="the source topic")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="librdkafka's security.protocol"
    )
    sasl_mechanism: str | None = Field(default=None, description="e.g. SCRAM-SHA-512 or PLAIN")
    sasl_username: str | None = None
    sasl_password: str | None = Field(default=None, description="pass as EnvVar, so Dagster never stores it")
    ssl_ca_location: str | None = Field(default=None, description="CA certificate file that signed the brokers'")

    @field_validator("security_protocol", mode="before")
    @classmethod
    def _upper_case(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    def client_config(self) -> dict[str, str]:
        """librdkafka settings for this cluster."""
        optional = {
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.sasl_username,
            "sasl.password": resolved(self.sasl_password),
            "ssl.ca.location": self.ssl_ca_location,
        }
        return {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
            **{key: value for key, value in optional.items() if value},
        }

    def record_source(self) -> KafkaRecordSource:
        return KafkaRecordSource(self.client_config(), self.topic)
