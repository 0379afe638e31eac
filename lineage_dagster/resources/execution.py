"""Where a checkpoint's steps run: read when the code location loads, to pick Dagster's executor."""

from __future__ import annotations

from typing import Literal

from dagster import ConfigurableResource
from pydantic import Field, model_validator

from lineage_dagster.resources.secrets import resolved


class ExecutionResource(ConfigurableResource):
    executor: Literal["in_process", "multiprocess", "celery", "k8s"] = Field(
        default="in_process", description="the Dagster executor of checkpoint runs"
    )
    parallelism: int = Field(default=2, ge=1, le=256, description="subtask steps per checkpoint")
    celery_broker_url: str | None = Field(default=None, description="the Celery broker (EnvVar: it may hold a password)")
    celery_backend_url: str | None = Field(default=None, description="where step results go; default the broker")
    celery_visibility_timeout_s: int = Field(
        default=600, ge=5, le=86_400, description="seconds before a vanished worker's step goes to another worker"
    )

    @model_validator(mode="after")
    def _celery_has_a_broker(self) -> ExecutionResource:
        if self.executor == "celery" and self.celery_broker_url is None:
            raise ValueError("CHECKPOINT_EXECUTOR=celery needs CELERY_BROKER_URL (e.g. redis://127.0.0.1:6379/0)")
        return self

    @property
    def celery_results_env(self) -> str:
        """The variable holding the results backend's URL: the broker's unless CELERY_BACKEND_URL is set."""
        return "CELERY_BACKEND_URL" if self.celery_backend_url else "CELERY_BROKER_URL"

    @property
    def celery_results_url(self) -> str | None:
        return resolved(self.celery_backend_url) or resolved(self.celery_broker_url)
