"""Checkpoints of the training state and the data stream's position.

A thin wrapper over Orbax's `CheckpointManager` in `workdir/checkpoints`: item
`state` (the train-state pytree, restored with the shardings of a target) and
item `data` (the input stream's JSON position), saved together at one step so
that a resumed run continues with exactly the batches it would have seen.
"""

import os
from typing import Any

import jax
import orbax.checkpoint as ocp


class Checkpointer:

  def __init__(self, directory: str, max_to_keep: int = 3):
    self.directory = os.path.abspath(directory)
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep,
                                             create=True),
        item_names=("state", "data"))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, step: int, state: Any, data_state: dict) -> None:
    """Starts an asynchronous save; `wait` blocks until it is on disk."""
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        data=ocp.args.JsonSave(data_state)))

  def restore(self, step: int, target: Any) -> tuple[Any, dict]:
    """Restores (state, data position) at `step`.

    `target` is a pytree of arrays or `jax.ShapeDtypeStruct`s with shardings;
    the restored state has its structure and shardings.
    """
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    restored = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract),
        data=ocp.args.JsonRestore()))
    return restored["state"], restored["data"]

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()
