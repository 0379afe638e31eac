from lineage_dagster.ingest.avro import decode_events, encode_event, encoded_size


def test_round_trip_and_encoded_size():
    value = encode_event("0b0e4d6c-aaaa-bbbb-cccc-1234567890ab", 1_764_000_000_123)
    decoded = decode_events([value], 1000)
    assert decoded.uuids == ["0b0e4d6c-aaaa-bbbb-cccc-1234567890ab"]
    assert decoded.timestamps == [1_764_000_000_123]
    assert encoded_size(36, 1_764_000_000_123) == len(value)


def test_malformed_payloads_are_reported_not_raised():
    good = encode_event("abc", 1)
    values = [good, good + b"x", good[:-1], None, b"\x02\xff", b"", good * 3, b"\xff" * 10]
    decoded = decode_events(values, max_record_bytes=len(good) * 2)
    assert decoded.indexes == [0]
    assert set(decoded.errors) == {1, 2, 3, 4, 5, 6, 7}
    assert "MAX_RECORD_BYTES" in decoded.errors[6]
    assert "tombstone" in decoded.errors[3]


def test_crafted_length_prefix_is_dropped_in_bounded_time_and_memory():
    import time
    import tracemalloc

    # A string length of ~2^62 followed by a few bytes: a naive decoder would allocate exabytes.
    crafted = [b"\xfe\xff\xff\xff\xff\xff\xff\xff\x7f" + b"x" * 16, b"\xfe\xff\xff\xff\x0f" + b"y" * 8]
    tracemalloc.start()
    started = time.perf_counter()
    decoded = decode_events(crafted * 500, max_record_bytes=1_048_576)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(decoded.errors) == 1000 and not decoded.indexes
    assert elapsed < 1.0
    assert peak < 8 * 1024 * 1024
