"""The vectorized decoder must agree with the per-record decoder on every payload."""

import itertools
import random

import numpy as np

from lineage_dagster.clients.kafka import RecordBatch
from lineage_dagster.ingest.avro import decode_events, encode_event
from lineage_dagster.ingest.bulk_decode import decode_batch


def read_in_three_calls(values) -> RecordBatch:
    """`values` as the Kafka reader yields them: consume calls' batches joined into one."""
    cuts = [0, len(values) // 3, len(values) // 2, len(values)]
    chunks = [values[a:b] for a, b in itertools.pairwise(cuts)]
    return RecordBatch.concat([RecordBatch.at([(0, o) for o in range(len(c))], c) for c in chunks])


def assert_same_as_per_record(values, max_record_bytes=1000):
    reference = decode_events(values, max_record_bytes)
    batch = read_in_three_calls(values)
    for bulk in (decode_batch(values, max_record_bytes), decode_batch(batch.values, max_record_bytes, batch.payload_bytes)):
        assert bulk.indexes.tolist() == reference.indexes
        assert bulk.uuids.to_list() == reference.uuids
        assert bulk.timestamps.tolist() == reference.timestamps
        assert set(bulk.errors) == set(reference.errors)


def test_uniform_batch_takes_the_fixed_layout_path():
    values = [encode_event(f"{i:036d}", 1_764_000_000_000 + i) for i in range(1000)]
    assert_same_as_per_record(values)
    assert_same_as_per_record([encode_event("", i) for i in range(5)])  # zero-width strings


def test_mixed_batch_with_every_kind_of_damage():
    rng = random.Random(7)
    good = [encode_event(f"id-{i}" * rng.randint(0, 12), rng.choice([0, -1, 1, 2**40, -(2**62), 2**63 - 1])) for i in range(300)]
    damaged = []
    for value in good:
        kind = rng.randrange(8)
        if kind == 0:
            damaged.append(value[: rng.randrange(len(value))])
        elif kind == 1:
            damaged.append(value + bytes([rng.randrange(256)]))
        elif kind == 2:
            damaged.append(None)
        elif kind == 3:
            damaged.append(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40))))
        else:
            damaged.append(value)
    assert_same_as_per_record(damaged)


def test_one_bad_record_does_not_shift_its_neighbours():
    values = [encode_event(f"{i:036d}", 1_764_000_000_000 + i) for i in range(10)]
    values[4] = values[4][:-1] + b"\xff"  # the timestamp's last byte now claims a continuation
    decoded = decode_batch(values, 1000)
    assert decoded.indexes.tolist() == [0, 1, 2, 3, 5, 6, 7, 8, 9]
    assert decoded.timestamps.tolist() == [1_764_000_000_000 + i for i in (0, 1, 2, 3, 5, 6, 7, 8, 9)]
    assert list(decoded.errors) == [4]


def test_invalid_utf8_is_caught_in_bulk():
    values = [encode_event("abc", 1), b"\x06\xff\xfe\xfd\x02", encode_event("xyz", 2)]
    decoded = decode_batch(values, 1000)
    assert decoded.uuids.to_list() == ["abc", "xyz"]
    assert list(decoded.errors) == [1]
    assert np.array_equal(decoded.indexes, [0, 2])
    uniform = [encode_event(f"{i:03d}", i) for i in range(5)]
    uniform[3] = uniform[3][:1] + b"\xff\xfe\xfd" + uniform[3][4:]  # same size, not UTF-8: the fixed-width path
    decoded = decode_batch(uniform, 1000)
    assert decoded.uuids.to_list() == ["000", "001", "002", "004"]
    assert list(decoded.errors) == [3]


def test_fixed_layout_agrees_with_per_record_on_damaged_bytes():
    """Same-size payloads take the 2-D path; one damaged byte per batch exercises each of its checks."""
    rng = random.Random(11)
    for timestamp in (0, 1_764_000_000_000, -1, 2**55, -(2**62), 2**63 - 1):  # varints of 1 to 10 bytes
        assert_same_as_per_record([encode_event(f"{i:036d}", timestamp - i % 2) for i in range(50)])
        for _ in range(100):
            values = [bytearray(encode_event(f"{i:036d}", timestamp)) for i in range(5)]
            damaged = rng.choice(values)
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
            assert_same_as_per_record([bytes(v) for v in values])


def test_nulls_and_empty_payloads_are_errors_not_rows():
    values = [None, b"", encode_event("a", 5), None]
    decoded = decode_batch(values, 1000)
    assert decoded.indexes.tolist() == [2]
    assert sorted(decoded.errors) == [0, 1, 3]


def test_strings_ending_in_a_nul_byte_keep_it():
    """A string may end in a NUL byte: the bulk path keeps it (a fixed-width bytes view would not)."""
    uniform = [encode_event(f"{i:035d}" + ("\x00" if i % 3 == 0 else "x"), 1_764_000_000_000 + i) for i in range(30)]
    mixed = [encode_event("a" * (i % 7) + "\x00" * (i % 2), i) for i in range(30)]
    for values in (uniform, mixed):
        assert_same_as_per_record(values)
        assert any(u.endswith("\x00") for u in decode_batch(values, 1000).uuids.to_list())
