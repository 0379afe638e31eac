"""The seed's input schema, plain (schemaless) Avro binary as its producer writes it.

Every decoded record is checked to have consumed its payload exactly: a truncated, padded or
corrupted payload can never be read as a plausible record.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field

from fastavro import parse_schema, schemaless_reader, schemaless_writer

INPUT_SCHEMA = parse_schema(
    {
        "type": "record",
        "name": "InputEvent",
        "namespace": "com.lineage",
        "fields": [
            {"name": "uuid", "type": "string"},
            {"name": "timestamp", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        ],
    }
)
# The same bytes read as a plain long: epoch milliseconds exactly, no datetime round trip.
_WIRE_SCHEMA = parse_schema(
    {
        "type": "record",
        "name": "InputEventWire",
        "fields": [{"name": "uuid", "type": "string"}, {"name": "timestamp", "type": "long"}],
    }
)


def encode_event(uuid: str, timestamp_ms: int) -> bytes:
    out = io.BytesIO()
    schemaless_writer(out, INPUT_SCHEMA, {"uuid": uuid, "timestamp": timestamp_ms})
    return out.getvalue()


def _varint_size(value: int) -> int:
    zigzag = (value << 1) ^ (value >> 63)
    size = 1
    while zigzag >= 0x80:
        zigzag >>= 7
        size += 1
    return size


def encoded_size(uuid_utf8_len: int, timestamp_ms: int) -> int:
    """Bytes the Avro encoding of (uuid, timestamp) takes: what a valid payload's length must be."""
    return _varint_size(uuid_utf8_len) + uuid_utf8_len + _varint_size(timestamp_ms)


@dataclass
class DecodedEvents:
    """Decoded records (by index into the input) and the ones that could not be decoded."""

    indexes: list[int] = field(default_factory=list)
    uuids: list[str] = field(default_factory=list)
    timestamps: list[int] = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)


def decode_events(values: Sequence[bytes | None], max_record_bytes: int) -> DecodedEvents:
    decoded = DecodedEvents()
    for index, value in enumerate(values):
        error = _decode_into(decoded, index, value, max_record_bytes)
        if error is not None:
            decoded.errors[index] = error
    return decoded


def _decode_into(decoded: DecodedEvents, index: int, value: bytes | None, max_record_bytes: int) -> str | None:
    if value is None:
        return "null value (tombstone)"
    if len(value) > max_record_bytes:
        return f"payload of {len(value)} bytes exceeds MAX_RECORD_BYTES={max_record_bytes}"
    try:
        record = schemaless_reader(io.BytesIO(value), _WIRE_SCHEMA, None)
        uuid, timestamp_ms = record["uuid"], record["timestamp"]
        uuid_len = len(uuid.encode())
    except Exception as error:  # noqa: BLE001 - any decoding failure is data to keep, not a crash
        return f"{type(error).__name__}: {error}"
    if encoded_size(uuid_len, timestamp_ms) != len(value):
        return f"payload is {len(value)} bytes but its record encodes to {encoded_size(uuid_len, timestamp_ms)}"
    decoded.indexes.append(index)
    decoded.uuids.append(uuid)
    decoded.timestamps.append(timestamp_ms)
    return None
