"""How big a checkpoint and its records may get."""

from dagster import ConfigurableResource
from pydantic import Field


class CheckpointLimits(ConfigurableResource):
    """Fixed in each checkpoint's plan, so a retry reads and drops exactly what its first attempt would."""

    max_records_per_checkpoint: int = Field(
        default=1_000_000, ge=1, le=100_000_000, description="records per checkpoint, shared fairly across partitions"
    )
    max_record_bytes: int = Field(
        default=1_048_576, ge=1, le=1_073_741_824, description="larger payloads go to the dead-letter area"
    )
    subtask_buffer_bytes: int = Field(
        default=67_108_864,
        ge=1,
        le=68_719_476_736,
        description="Kafka payload bytes a subtask step holds before writing; a partition past its share gets files of its own",
    )
    allow_offset_loss: bool = Field(
        default=False, description="let a checkpoint skip offsets Kafka deleted before they were read (recorded as lost)"
    )
