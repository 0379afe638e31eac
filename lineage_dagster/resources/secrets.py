"""Secret fields hold an `EnvVar`: Dagster resolves it in a run, this reads it anywhere else."""

from dagster import EnvVar


def resolved(value: str | None) -> str | None:
    """A field's value. Dagster resolves an `EnvVar` field in a run; anywhere else (the CLI, a
    Celery worker's start-up) it is read from the environment here."""
    return value.get_value() if isinstance(value, EnvVar) else value
