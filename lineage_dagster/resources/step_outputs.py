"""Where a checkpoint run's steps hand each other the plan and the subtasks' file lists."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

from dagster import InitResourceContext, InputContext, IOManager, OutputContext, io_manager


class StepOutputFiles(IOManager):
    """Pickles each step output to `<base_dir>/<run id>/<step key>/<output name>`: the layout and
    format of Dagster's default `fs_io_manager`, so a re-execution from failure loads the outputs its
    parent run stored (the plan above all).

    Unlike that one it logs nothing: each of its "Writing file at" / "Loading file from" lines is an
    event Dagster stores, several per checkpoint, most of them between the subtasks' end and the
    commit."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir

    def _path(self, context: OutputContext) -> Path:
        return self.base_dir.joinpath(*context.get_identifier())

    def handle_output(self, context: OutputContext, obj: object) -> None:
        path = self._path(context)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.partial")
        partial.write_bytes(pickle.dumps(obj, pickle.HIGHEST_PROTOCOL))
        os.replace(partial, path)  # a run killed mid-write leaves no truncated output for its retry

    def load_input(self, context: InputContext) -> object:
        return pickle.loads(self._path(context.upstream_output).read_bytes())


@io_manager(description="Step outputs pickled under the Dagster instance's storage directory, without log events.")
def step_output_files(init_context: InitResourceContext) -> StepOutputFiles:
    return StepOutputFiles(Path(init_context.instance.storage_directory()))
