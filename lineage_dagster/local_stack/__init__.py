"""A Docker-free local stack: Apache Kafka (KRaft, jars from Maven Central) and SeaweedFS S3."""

from lineage_dagster.local_stack.stack import LocalStack, StackConfig, StackError

__all__ = ["LocalStack", "StackConfig", "StackError"]
