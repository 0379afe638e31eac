"""The code location loads, has the documented shape, and the schedule keeps one run in flight."""

import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from dagster import (
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    Definitions,
    SkipReason,
    build_schedule_context,
    build_sensor_context,
    instance_for_test,
)

from lineage_dagster.assets import build_checkpoint_assets
from lineage_dagster.jobs import build_checkpoint_job
from lineage_dagster.sensors import catch_up_sensor, checkpoint_schedule
from lineage_dagster.settings import load_resources


def test_definitions_module_loads_with_default_settings():
    from lineage_dagster.definitions import defs

    Definitions.validate_loadable(defs)
    job = defs.resolve_job_def("checkpoint_job")
    assert job.executor_def.name == "in_process"
    assert defs.resolve_schedule_def("checkpoint_schedule").cron_schedule == "* * * * *"
    assert defs.resolve_sensor_def("catch_up_sensor").default_status == DefaultSensorStatus.RUNNING


def test_one_step_per_subtask():
    defs = Definitions(
        assets=build_checkpoint_assets(parallelism=3),
        jobs=[build_checkpoint_job()],
        resources=load_resources({}).dagster_resources(),
    )
    nodes = defs.resolve_job_def("checkpoint_job").graph.node_dict["checkpoint"].definition.node_dict
    assert sorted(nodes) == [
        "commit_checkpoint_log",
        "plan_checkpoint",
        "write_subtask_0_files",
        "write_subtask_1_files",
        "write_subtask_2_files",
    ]


def test_schedule_skips_while_a_checkpoint_run_is_in_flight():
    resources = load_resources({}).dagster_resources()
    with (
        instance_for_test() as instance,
        build_schedule_context(
            instance=instance,
            scheduled_execution_time=datetime(2026, 11, 25, 20, 5, tzinfo=UTC),
            resources=resources,
        ) as context,
    ):
        instance.add_run(DagsterRun(job_name="checkpoint_job", run_id="r-in-flight", status=DagsterRunStatus.STARTED))
        result = checkpoint_schedule(context)
    assert isinstance(result, SkipReason)
    assert "r-in-flight" in result.skip_message


def test_catch_up_sensor_skips_while_a_checkpoint_run_is_in_flight():
    resources = load_resources({}).dagster_resources()
    with (
        instance_for_test() as instance,
        build_sensor_context(instance=instance, resources=resources) as context,
    ):
        instance.add_run(DagsterRun(job_name="checkpoint_job", run_id="r-in-flight", status=DagsterRunStatus.STARTING))
        result = catch_up_sensor(context)
    assert isinstance(result, SkipReason)
    assert "r-in-flight" in result.skip_message


@pytest.mark.parametrize(
    ("executor", "io_manager"),
    [
        ("in_process", "StepOutputFiles"),
        ("multiprocess", "StepOutputFiles"),
        ("celery", "S3PickleIOManager"),
        ("k8s", "S3PickleIOManager"),
    ],
)
def test_the_executor_is_one_setting(tmp_path, executor, io_manager):
    # A fresh process: the code location reads its settings once, at import.
    script = tmp_path / "load.py"
    script.write_text(
        "from dagster import DagsterInstance, IOManagerDefinition, build_init_resource_context\n"
        "from lineage_dagster.definitions import defs\n"
        "job = defs.resolve_job_def('checkpoint_job')\n"
        "manager = defs.resources['io_manager']\n"
        "if isinstance(manager, IOManagerDefinition):\n"
        "    manager = manager.resource_fn(build_init_resource_context(instance=DagsterInstance.ephemeral()))\n"
        "print(job.executor_def.name, type(manager).__name__, job.tags['lineage/KAFKA_TOPIC'], job.tags['lineage/PARALLELISM'])\n"
    )
    env = {**os.environ, "CHECKPOINT_EXECUTOR": executor, "CELERY_BROKER_URL": "redis://127.0.0.1:1/0", "PARALLELISM": "3"}
    result = subprocess.run([sys.executable, "-W", "ignore", str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == [executor, io_manager, "lineage-input", "3"]


def test_a_celery_worker_refuses_to_start_without_the_code_locations_executor():
    env = {k: v for k, v in os.environ.items() if k not in {"CHECKPOINT_EXECUTOR", "CELERY_BROKER_URL"}}
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", "import lineage_dagster.celery_app"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "a Celery worker needs CHECKPOINT_EXECUTOR=celery and CELERY_BROKER_URL" in result.stderr
