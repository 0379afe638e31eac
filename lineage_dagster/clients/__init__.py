"""Thin clients for the real services (Kafka, S3), free of Dagster so the CLI and tests can use them."""
