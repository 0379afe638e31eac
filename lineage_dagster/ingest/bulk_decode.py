"""Vectorized decoding of a whole batch of seed-schema payloads into NumPy and Polars columns.

The input schema is `{uuid: string, timestamp: long}`, so a payload is
`varint(zigzag(len(uuid))) + uuid-bytes + varint(zigzag(timestamp))`. For every payload whose
string length fits one varint byte (uuids are 36 bytes) the layout is decoded with array
operations over the concatenated batch; each record is checked to end exactly at its payload's
end and to be valid UTF-8, so one malformed record can never shift or corrupt its neighbours.
Anything else (long strings, malformed bytes, tombstones, oversize) goes through the per-record
decoder in `avro.py`, which either decodes it or says why not.

NumPy and Polars only: pyarrow would add its import to every checkpoint run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from lineage_dagster.clients.kafka import joined_payloads
from lineage_dagster.ingest.avro import decode_events

_MAX_VARINT = 10


@dataclass
class DecodedBatch:
    """Good rows as columns (in input order) and the errors of the rest, by input index."""

    indexes: np.ndarray  # int64 positions of the good rows in the input
    uuids: pl.Series
    timestamps: np.ndarray  # int64 epoch milliseconds
    errors: dict[int, str]
    payload_lengths: np.ndarray  # int64 bytes of every input payload, -1 for a tombstone


def _unzigzag(zigzag: np.ndarray) -> np.ndarray:
    return ((zigzag >> np.uint64(1)) ^ (np.uint64(0) - (zigzag & np.uint64(1)))).view(np.int64)


def _payload_lengths(payloads: pl.Series) -> np.ndarray:
    """Bytes of each payload, -1 for a null."""
    sizes = payloads.bin.size()
    return (sizes.fill_null(-1) if payloads.null_count() else sizes).to_numpy().astype(np.int64)


def _fast_path(buffer: np.ndarray, lengths: np.ndarray, max_record_bytes: int) -> tuple:
    """Rows the array decoder can take, their string lengths and decoded timestamps."""
    n = len(lengths)
    starts = np.zeros(n, dtype=np.int64)
    np.cumsum(np.maximum(lengths[:-1], 0), out=starts[1:])
    ok = (lengths >= 2) & (lengths <= max_record_bytes)
    first = np.zeros(n, dtype=np.int64)
    first[ok] = buffer[starts[ok]]
    ok &= (first < 0x80) & (first % 2 == 0)  # one-byte varint, non-negative length
    string_len = first >> 1
    ts_len = lengths - 1 - string_len
    ok &= (ts_len >= 1) & (ts_len <= _MAX_VARINT)
    ts_start = starts + 1 + string_len
    last_byte = max(len(buffer) - 1, 0)
    zigzag = np.zeros(n, dtype=np.uint64)
    for j in range(_MAX_VARINT):  # one pass per varint byte, over all rows at once
        inside = ok & (ts_len > j)
        if not inside.any():
            break
        byte = buffer[np.minimum(ts_start + j, last_byte)] if len(buffer) else np.zeros(n, dtype=np.uint8)
        is_last = ts_len == j + 1
        # Every byte but the last has the continuation bit, the last does not; a 10th byte is 0 or 1.
        ok &= ~inside | (is_last == (byte < 0x80))
        if j == _MAX_VARINT - 1:
            ok &= ~inside | (byte <= 1)
        zigzag |= np.where(inside, (byte & 0x7F).astype(np.uint64) << np.uint64(7 * j), np.uint64(0))
    return ok, string_len, _unzigzag(zigzag)


_INVALID_UTF8 = (pl.exceptions.ComputeError, pl.exceptions.InvalidOperationError)


def _strings(payloads: pl.Series, rows: np.ndarray, string_len: np.ndarray) -> pl.Series | None:
    """The string field of the given rows (its bytes follow the one-byte length), or None if any
    is not valid UTF-8 (rare: the per-record decoder then finds which)."""
    try:
        selected = payloads if len(rows) == len(payloads) else payloads.gather(rows)
        sliced = selected.to_frame().select(pl.col("payload").bin.slice(1, pl.Series(string_len)))
        return sliced.to_series().cast(pl.String).alias("uuid")
    except _INVALID_UTF8:
        return None


def _fixed_width_strings(matrix: np.ndarray) -> pl.Series | None:
    """Strings of one width from a (rows, width) byte matrix, as fixed-size arrays turned into
    bytes (cheaper than slicing them out of the payloads); None if any is not valid UTF-8."""
    if matrix.shape[1] == 0:
        return pl.Series("uuid", [""] * len(matrix), dtype=pl.String)
    try:
        return pl.Series("uuid", np.ascontiguousarray(matrix)).arr.to_list().cast(pl.Binary).cast(pl.String)
    except _INVALID_UTF8:
        return None


def _varint_columns(columns: list[np.ndarray], ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Decode fixed-width varints given as byte columns; also narrow `ok` to well-formed ones."""
    zigzag = np.zeros(len(ok), dtype=np.uint64)
    for j, byte in enumerate(columns):
        is_last = j == len(columns) - 1
        ok &= (byte < 0x80) if is_last else (byte >= 0x80)
        if j == _MAX_VARINT - 1:
            ok &= byte <= 1
        zigzag |= (byte & 0x7F).astype(np.uint64) << np.uint64(7 * j)
    return ok, _unzigzag(zigzag)


def _packed_varints(matrix: np.ndarray, first: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Varints of `size` <= 8 bytes at column `first` of every row, read as one little-endian uint64 each.

    Continuation bits are checked with one mask and the 7-bit groups packed with `size` shifts, so
    the cost is a handful of passes over one array whatever the varint length.
    """
    words = np.zeros((len(matrix), 8), dtype=np.uint8)
    words[:, :size] = matrix[:, first : first + size]
    raw = words.view("<u8").ravel()
    high_bits = np.uint64(int.from_bytes(b"\x80" * size + b"\x00" * (8 - size), "little"))
    continued = np.uint64(int.from_bytes(b"\x80" * (size - 1) + b"\x00" * (9 - size), "little"))
    ok = (raw & high_bits) == continued  # every byte but the last continues, the last does not
    zigzag = np.zeros(len(raw), dtype=np.uint64)
    for j in range(size):
        zigzag |= (raw >> np.uint64(j)) & np.uint64(0x7F << (7 * j))
    return ok, zigzag


def _decode_fixed_layout(buffer: np.ndarray, rows: int, size: int, max_record_bytes: int) -> tuple | None:
    """All records the same size with the same one-byte string length: decode them as a 2-D view.
    Returns which rows are well-formed, their timestamps and their strings' bytes as a matrix."""
    if size < 2 or size > max_record_bytes or len(buffer) != rows * size:
        return None
    matrix = buffer.reshape(rows, size)
    first = int(matrix[0, 0])
    string_len = first >> 1
    ts_len = size - 1 - string_len
    if first >= 0x80 or first % 2 or not 1 <= ts_len <= _MAX_VARINT or not (matrix[:, 0] == first).all():
        return None
    if ts_len <= 8:
        ok, zigzag = _packed_varints(matrix, 1 + string_len, ts_len)
        timestamps = _unzigzag(zigzag)
    else:
        ok, timestamps = _varint_columns([matrix[:, 1 + string_len + j] for j in range(ts_len)], np.ones(rows, dtype=np.bool_))
    return ok, timestamps, matrix[:, 1 : 1 + string_len]


def decode_batch(values: Sequence[bytes | None], max_record_bytes: int, payload_bytes: bytes | None = None) -> DecodedBatch:
    """Decode `values`; `payload_bytes`, if given, must be `joined_payloads(values)`, which saves joining them again."""
    payloads = pl.Series("payload", values, dtype=pl.Binary)
    lengths = _payload_lengths(payloads)
    if payload_bytes is None:
        payload_bytes = joined_payloads(values)
    buffer = np.frombuffer(payload_bytes, dtype=np.uint8)
    fixed = None
    if len(lengths) and lengths[0] >= 0 and (lengths == lengths[0]).all():
        fixed = _decode_fixed_layout(buffer, len(lengths), int(lengths[0]), max_record_bytes)
    if fixed is not None and fixed[0].all():
        _, timestamps, string_bytes = fixed
        fast_rows = np.arange(len(lengths))
        uuids = _fixed_width_strings(string_bytes)
    else:
        fast, string_len, timestamps = _fast_path(buffer, lengths, max_record_bytes)
        fast_rows = np.flatnonzero(fast)
        uuids = _strings(payloads, fast_rows, string_len[fast_rows])
    if uuids is None:
        fast_rows = np.zeros(0, dtype=np.int64)
        uuids = pl.Series("uuid", [], dtype=pl.String)
    slow = np.ones(len(lengths), dtype=np.bool_)
    slow[fast_rows] = False
    slow_rows = np.flatnonzero(slow)
    indexes, stamps = fast_rows, timestamps[fast_rows]
    errors: dict[int, str] = {}
    if len(slow_rows):
        slow = decode_events([values[i] for i in slow_rows], max_record_bytes)
        errors = {int(slow_rows[i]): message for i, message in slow.errors.items()}
        if slow.indexes:
            slow_indexes = slow_rows[slow.indexes]
            merged = pl.DataFrame(
                {
                    "i": np.concatenate([indexes, slow_indexes]),
                    "uuid": pl.concat([uuids, pl.Series("uuid", slow.uuids, dtype=pl.String)]),
                    "ts": np.concatenate([stamps, np.asarray(slow.timestamps, dtype=np.int64)]),
                }
            ).sort("i")
            indexes, uuids, stamps = merged["i"].to_numpy(), merged["uuid"], merged["ts"].to_numpy()
    return DecodedBatch(indexes=indexes, uuids=uuids, timestamps=stamps, errors=errors, payload_lengths=lengths)
