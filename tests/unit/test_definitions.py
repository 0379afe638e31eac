"""The code location loads, has the documented shape, and the schedule keeps one run in flight."""

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
from lineage_dagster.resources import build_resources
from lineage_dagster.sensors import build_checkpoint_job, catch_up_sensor, checkpoint_schedule
from lineage_dagster.settings import load_settings


def test_definitions_module_loads_with_default_settings():
    from lineage_dagster.definitions import defs

    Definitions.validate_loadable(defs)
    job = defs.resolve_job_def("checkpoint_job")
    assert job.executor_def.name == "in_process"
    assert defs.resolve_schedule_def("checkpoint_schedule").cron_schedule == "* * * * *"
    assert defs.resolve_sensor_def("catch_up_sensor").default_status == DefaultSensorStatus.RUNNING


def test_one_step_per_subtask():
    settings = load_settings({"PARALLELISM": "3"})
    defs = Definitions(
        assets=build_checkpoint_assets(settings.parallelism),
        jobs=[build_checkpoint_job()],
        resources=build_resources(settings),
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
    resources = build_resources(load_settings({}))
    with (
        instance_for_test() as instance,
        build_schedule_context(
            instance=instance,
            scheduled_execution_time=datetime(2026, 11, 25, 20, 5, tzinfo=UTC),
            resources={"kafka": resources["kafka"], "lake": resources["lake"]},
        ) as context,
    ):
        instance.add_run(DagsterRun(job_name="checkpoint_job", run_id="r-in-flight", status=DagsterRunStatus.STARTED))
        result = checkpoint_schedule(context)
    assert isinstance(result, SkipReason)
    assert "r-in-flight" in result.skip_message


def test_catch_up_sensor_skips_while_a_checkpoint_run_is_in_flight():
    resources = build_resources(load_settings({}))
    with (
        instance_for_test() as instance,
        build_sensor_context(instance=instance, resources={"kafka": resources["kafka"], "lake": resources["lake"]}) as context,
    ):
        instance.add_run(DagsterRun(job_name="checkpoint_job", run_id="r-in-flight", status=DagsterRunStatus.STARTING))
        result = catch_up_sensor(context)
    assert isinstance(result, SkipReason)
    assert "r-in-flight" in result.skip_message


def test_a_run_process_skips_the_cyclic_collection_at_exit(tmp_path):
    # The first handler registered runs last: it sees whether the run's handler froze the objects.
    script = tmp_path / "run_process.py"
    script.write_text(
        "import atexit, gc\n"
        "atexit.register(lambda: print('frozen at exit:', gc.get_freeze_count() > 0))\n"
        "from lineage_dagster.ingest.collector import skip_cyclic_gc_at_exit\n"
        "handlers = atexit._ncallbacks()\n"
        "skip_cyclic_gc_at_exit()\n"
        "skip_cyclic_gc_at_exit()\n"
        "print('frozen during the run:', gc.get_freeze_count() > 0, 'new handlers:', atexit._ncallbacks() - handlers)\n"
    )
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.splitlines() == ["frozen during the run: False new handlers: 1", "frozen at exit: True"]


@pytest.mark.parametrize(
    ("setup", "build"),
    [
        ("from lineage_dagster.assets.checkpoint import _subtask_module", "_subtask_module()"),
        (
            "from lineage_dagster.resources.lake import _client_for\n"
            "config = (('endpoint_url', 'http://127.0.0.1:1'), ('region_name', 'us-east-1'))",
            "_client_for(config)",
        ),
    ],
    ids=["parquet modules", "s3 client"],
)
def test_long_lived_objects_are_built_once_without_a_full_collection_and_stay_frozen(tmp_path, setup, build):
    script = tmp_path / "first_step.py"
    script.write_text(
        "import gc\n"
        f"{setup}\n"
        "full = []\n"
        "gc.callbacks.append(lambda phase, info: phase == 'stop' and info['generation'] == 2 and full.append(info))\n"
        f"built = {build}\n"
        f"assert {build} is built\n"
        "print('full collections:', len(full), 'frozen:', gc.get_freeze_count() > 0, 'collector on:', gc.isenabled())\n"
    )
    result = subprocess.run([sys.executable, "-W", "ignore", str(script)], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "full collections: 0 frozen: True collector on: True"


def test_loading_the_code_location_leaves_the_record_path_modules_unloaded(tmp_path):
    # Every webserver, daemon and run process loads the definitions; most runs read no records.
    script = tmp_path / "load.py"
    script.write_text(
        "import sys\n"
        "import lineage_dagster.definitions\n"
        "print(sorted(m for m in ('numpy', 'polars', 'fastavro') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-W", "ignore", str(script)], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "[]"
