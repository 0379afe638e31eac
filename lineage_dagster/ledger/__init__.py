"""Pure checkpoint logic: plans, object keys, commit-log rows, the commit protocol and verification.

Nothing here imports Dagster, Kafka or boto3, so it is unit-tested in milliseconds.
"""
