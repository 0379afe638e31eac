"""Turning Kafka records into Parquet files: Avro decoding and the per-subtask writer."""
