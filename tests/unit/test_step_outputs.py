"""The IO manager between a checkpoint run's steps: Dagster's default layout and format, no log events."""

from dagster import FilesystemIOManager, build_init_resource_context, build_input_context, build_output_context

from lineage_dagster.resources.step_outputs import StepOutputFiles


def test_an_output_is_stored_under_run_step_and_name_and_loads_back(tmp_path):
    manager = StepOutputFiles(tmp_path)
    output = build_output_context(run_id="run-1", step_key="checkpoint.plan_checkpoint", name="plan")
    manager.handle_output(output, {"checkpoint_id": 7, "ranges": [(0, 10, 20)]})
    assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()] == [
        "run-1/checkpoint.plan_checkpoint/plan"
    ]
    assert manager.load_input(build_input_context(upstream_output=output)) == {"checkpoint_id": 7, "ranges": [(0, 10, 20)]}


def test_a_retry_loads_what_dagster_default_io_manager_stored(tmp_path):
    """A run stored by a release that still used `fs_io_manager` can be retried by this one."""
    default = FilesystemIOManager(base_dir=str(tmp_path)).create_io_manager(build_init_resource_context())
    output = build_output_context(run_id="parent-run", step_key="checkpoint.write_subtask_0_files", name="result")
    default.handle_output(output, ["part-00000001-0.parquet"])
    assert StepOutputFiles(tmp_path).load_input(build_input_context(upstream_output=output)) == ["part-00000001-0.parquet"]
