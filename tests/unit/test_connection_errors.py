"""What a user reads when Kafka or S3 refuses the connection: one line naming the setting to fix, from
librdkafka's own messages (recorded from a real SASL_SSL broker)."""

import pytest

from lineage_dagster.clients.kafka_errors import explain_connection_failure
from lineage_dagster.clients.s3 import S3AccessError, make_s3_client

SECURED = {
    "bootstrap.servers": "127.0.0.1:30094",
    "security.protocol": "SASL_SSL",
    "sasl.mechanism": "SCRAM-SHA-512",
    "sasl.username": "lineage",
    "sasl.password": "secret",
}


@pytest.mark.parametrize(
    ("messages", "config", "names", "certain"),
    [
        (
            [
                "SASL authentication error: Authentication failed during authentication due to invalid credentials "
                "with SASL mechanism SCRAM-SHA-512 (after 328ms in state AUTH_REQ)"
            ],
            SECURED,
            "check KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD",
            True,
        ),
        (
            [
                "SASL PLAIN mechanism handshake failed: Broker: Unsupported SASL mechanism: broker's supported "
                "mechanisms: SCRAM-SHA-512 (after 302ms in state AUTH_HANDSHAKE)"
            ],
            {**SECURED, "sasl.mechanism": "PLAIN"},
            "does not accept SASL mechanism 'PLAIN'",
            True,
        ),
        (
            [
                "SSL handshake failed: error:0A000086:SSL routines::certificate verify failed: broker certificate could "
                "not be verified (after 21ms in state SSL_HANDSHAKE)"
            ],
            SECURED,
            "check KAFKA_SSL_CA_LOCATION",
            True,
        ),
        (
            ["Disconnected: connection closed by peer: receive 0 after POLLIN (after 3ms in state APIVERSION_QUERY)"],
            {"bootstrap.servers": "127.0.0.1:30094"},
            "check KAFKA_SECURITY_PROTOCOL (PLAINTEXT: SSL or SASL_SSL?)",
            False,
        ),
        (
            [
                "SSL handshake failed: Disconnected: SSL connection closed by peer: connecting to a PLAINTEXT broker "
                "listener? (after 9ms in state SSL_HANDSHAKE)"
            ],
            SECURED,
            "check KAFKA_SECURITY_PROTOCOL (SASL_SSL) and KAFKA_BOOTSTRAP_SERVERS",
            True,
        ),
        (
            ["Connect to ipv4#127.0.0.1:1 failed: Connection refused (after 0ms in state CONNECT)"],
            {**SECURED, "bootstrap.servers": "127.0.0.1:1"},
            "cannot reach Kafka at '127.0.0.1:1' (Connect to ipv4#127.0.0.1:1 failed: Connection refused); "
            "check KAFKA_BOOTSTRAP_SERVERS",
            False,
        ),
    ],
)
def test_each_refusal_names_its_setting(messages, config, names, certain):
    message, is_certain = explain_connection_failure(messages, config)
    assert names in message
    assert is_certain == certain
    assert "\n" not in message and "secret" not in message


def test_an_empty_ca_bundle_for_s3_names_aws_ca_bundle(monkeypatch):
    monkeypatch.setenv("AWS_CA_BUNDLE", "")
    with pytest.raises(S3AccessError, match="check AWS_CA_BUNDLE"):
        make_s3_client(endpoint_url="https://127.0.0.1:1", region=None, access_key_id=None, secret_access_key=None)
