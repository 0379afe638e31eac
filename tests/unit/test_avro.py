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
