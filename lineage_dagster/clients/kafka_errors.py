"""What went wrong connecting to Kafka, in one line that names the setting to fix.

librdkafka retries a failing connection forever and reports each attempt (an error callback and a
log line, several a second); a client here keeps a few distinct ones instead of printing them, and
this module turns them into one message.
"""

from __future__ import annotations

import logging
import re

from confluent_kafka import KafkaError

_BROKER = re.compile(r"^\S+://\S+/\S+: |^\S+/bootstrap: ")
_TIMING = re.compile(r" \(after \d+ms in state \w+\)$")


def _detail(message: str) -> str:
    """librdkafka's message without the log prefix and the broker it came from."""
    return _BROKER.sub("", message.split("]: ", 1)[-1]).strip()


def _short(message: str) -> str:
    return _TIMING.sub("", message)


class ClientDiagnostics(logging.Handler):
    """A client's errors and log lines: the first few distinct ones, kept rather than printed."""

    def __init__(self, keep: int = 20) -> None:
        super().__init__(logging.DEBUG)
        self.keep = keep
        self.messages: list[str] = []
        self.logger = logging.Logger("librdkafka", logging.DEBUG)  # not registered: goes with the client
        self.logger.addHandler(self)

    def _add(self, message: str) -> None:
        detail = _detail(message)
        if detail not in self.messages and len(self.messages) < self.keep:
            self.messages.append(detail)

    def emit(self, record: logging.LogRecord) -> None:
        self._add(record.getMessage())

    def on_error(self, error: KafkaError) -> None:
        if error.code() != KafkaError._ALL_BROKERS_DOWN:  # says nothing the others do not
            self._add(error.str())

    def client_config(self) -> dict[str, object]:
        return {"logger": self.logger, "error_cb": self.on_error}


def explain_connection_failure(messages: list[str], client_config: dict[str, str]) -> tuple[str, bool]:
    """One line saying what happened and which setting to fix, and whether it is certain (a refused
    login or certificate) rather than a broker that may yet come up."""
    where = f"Kafka at {client_config.get('bootstrap.servers')!r}"
    protocol = client_config.get("security.protocol", "PLAINTEXT")
    text = "\n".join(messages).lower()

    def first(*needles: str) -> str:
        found = next((m for m in messages if any(n in m.lower() for n in needles)), messages[0] if messages else "no answer")
        return _short(found)

    if "invalid credentials" in text or "authentication failed" in text:
        detail = first("invalid credentials", "authentication failed")
        return f"{where} refused the SASL login ({detail}); check KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD", True
    if "unsupported sasl mechanism" in text:
        detail = first("unsupported sasl mechanism")
        return (
            f"{where} does not accept SASL mechanism {client_config.get('sasl.mechanism')!r} ({detail}); "
            "check KAFKA_SASL_MECHANISM",
            True,
        )
    if "certificate verify failed" in text:
        return (
            f"cannot verify the TLS certificate of {where} (certificate verify failed); check KAFKA_SSL_CA_LOCATION: it "
            "must name the CA file that signed the brokers' certificates",
            True,
        )
    if "plaintext broker listener" in text:
        return f"{where} does not speak TLS there; check KAFKA_SECURITY_PROTOCOL ({protocol}) and KAFKA_BOOTSTRAP_SERVERS", True
    if protocol in ("PLAINTEXT", "SASL_PLAINTEXT") and "closed by peer" in text and "in state apiversion_query" in text:
        return (
            f"{where} closed the connection before answering, as a TLS listener does to a client without TLS; check "
            f"KAFKA_SECURITY_PROTOCOL ({protocol}: SSL or SASL_SSL?)",
            False,
        )
    if "sasl" in text and "handshake" in text:
        return (
            f"{where} failed the SASL handshake ({first('sasl')}); check KAFKA_SASL_MECHANISM and KAFKA_SECURITY_PROTOCOL",
            True,
        )
    return f"cannot reach {where} ({first('connect', 'resolve', 'timed out')}); check KAFKA_BOOTSTRAP_SERVERS", False
