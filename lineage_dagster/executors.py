"""Where a checkpoint's steps run: the Dagster executor named by CHECKPOINT_EXECUTOR, and the IO
manager that hands step outputs between them.

The steps do their own work wherever the executor puts them; this module only picks and
configures Dagster's, dagster-celery's and dagster-k8s's executors.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from dagster import (
    ExecutorDefinition,
    InitExecutorContext,
    IOManagerDefinition,
    executor,
    in_process_executor,
    multiple_process_executor_requirements,
    multiprocess_executor,
)
from dagster_aws.s3 import S3PickleIOManager

from lineage_dagster.resources.execution import ExecutionResource
from lineage_dagster.resources.lake import LakeResource
from lineage_dagster.resources.step_outputs import step_output_files

# Imported once by the forkserver, so each step process starts from a loaded code location and
# data path (polars, numpy) instead of importing them afresh.
PRELOADED_MODULES = ["lineage_dagster.definitions", "lineage_dagster.ingest.subtask"]


def celery_config_source(settings: ExecutionResource) -> dict[str, object]:
    """Celery settings the run and every worker share. A step's task is acknowledged only once it
    finished, so a step whose worker died is handed to another worker: at once when the worker's
    pool process died, after the visibility timeout when the whole worker (or its machine) did. A
    step is idempotent (same keys, same bytes), so running it again is safe."""
    return {
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            "visibility_timeout": settings.celery_visibility_timeout_s,
            # Look for tasks of vanished workers every few seconds, not every 100 s.
            "unacked_restore_interval": 5,
            "unacked_restore_throttle": 1,
            "max_retries": 3,
        },
    }


class CeleryBrokerUnreachable(RuntimeError):
    """The run cannot hand its steps to Celery; nothing was planned or written."""


def check_celery_broker(url: str, timeout_s: float = 5.0) -> None:
    from kombu import Connection

    with Connection(url, connect_timeout=timeout_s) as connection:
        try:
            connection.ensure_connection(max_retries=1, timeout=timeout_s)
        except Exception as error:  # noqa: BLE001 - kombu raises the transport's own errors
            parts = urlsplit(url)
            where = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()  # no credentials
            raise CeleryBrokerUnreachable(
                f"cannot reach the Celery broker at {where} ({error}); check CELERY_BROKER_URL and that the broker runs"
            ) from None


def _celery_executor(settings: ExecutionResource) -> ExecutorDefinition:
    from dagster_celery import celery_executor

    @executor(
        name="celery",
        config_schema=celery_executor.config_schema,
        requirements=multiple_process_executor_requirements(),
    )
    def checked_celery_executor(init_context: InitExecutorContext):  # noqa: ANN202 - dagster-celery's executor
        """dagster-celery's executor, after a look at the broker: without one the run would wait
        for its first step forever."""
        celery = celery_executor.executor_creation_fn(init_context)  # type: ignore[misc]
        check_celery_broker(celery.broker)
        return celery

    # The URLs are read from the environment where the run starts, never stored with the run.
    return checked_celery_executor.configured(
        {
            "broker": {"env": "CELERY_BROKER_URL"},
            "backend": {"env": settings.celery_results_env},
            "config_source": celery_config_source(settings),
        }
    )


def checkpoint_executor(execution: ExecutionResource) -> ExecutorDefinition:
    name = execution.executor
    if name == "multiprocess":
        return multiprocess_executor.configured(
            {"start_method": {"forkserver": {"preload_modules": PRELOADED_MODULES}}}, name="multiprocess"
        )
    if name == "celery":
        return _celery_executor(execution)
    if name == "k8s":
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor
    return in_process_executor


def step_output_io_manager(execution: ExecutionResource, lake: LakeResource) -> IOManagerDefinition | S3PickleIOManager:
    """Celery workers and Kubernetes pods may sit on other machines, so their steps hand outputs
    over through S3, beside the commit log; on one machine they go to the instance's storage
    directory."""
    if execution.executor not in ("celery", "k8s"):
        return step_output_files
    log = lake.commit_log
    return S3PickleIOManager(s3_resource=lake.s3, s3_bucket=log.bucket, s3_prefix=log.key("_step-outputs"))
