"""lineage-dagster: Kafka to S3 Parquet with a provable write-ahead commit log, orchestrated by Dagster."""
