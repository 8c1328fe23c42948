"""Checkpoints of the training state and the data stream's position.

A thin wrapper over Orbax's `CheckpointManager` in `workdir/checkpoints`: item
`state` (the train-state pytree, restored with the shardings of a target) and
item `data` (the input stream's JSON position), saved together at one step so
that a resumed run continues with exactly the batches it would have seen.

The data position is per process: each process writes its own
`data/process_I-of-N.json` (a file-backed pipeline's iterator state may differ
between processes), and reads its own back. A checkpoint written by N
processes resumes with M != N processes only if all N positions are the same
(the embedded datasets: the position is a global batch count).
"""

import dataclasses
import json
import os
from typing import Any

import jax
import orbax.checkpoint as ocp
from etils import epath

from gen_jax.errors import UserError


def _process_file(index: int, count: int) -> str:
  return f"process_{index}-of-{count}.json"


class ProcessJsonHandler(ocp.AsyncCheckpointHandler):
  """Orbax handler: every process saves and restores its own JSON item.

  Orbax's `JsonCheckpointHandler` writes on the primary host only, which
  would lose the other processes' data positions.
  """

  async def async_save(self, directory: epath.Path,
                       args: "ProcessJsonSave") -> list:
    async def write():
      self.save(directory, args)
    # Waits, as Orbax's own JSON handler does, for the item directory.
    return [ocp.future.CommitFutureAwaitingContractedSignals(
        write(), name="process_json_save")]

  def save(self, directory: epath.Path, args: "ProcessJsonSave") -> None:
    name = _process_file(jax.process_index(), jax.process_count())
    (epath.Path(directory) / name).write_text(json.dumps(args.item))

  def restore(self, directory: epath.Path,
              args: "ProcessJsonRestore | None" = None) -> Any:
    del args
    directory = epath.Path(directory)
    own = directory / _process_file(jax.process_index(), jax.process_count())
    if own.exists():
      return json.loads(own.read_text())
    saved = sorted(directory.glob("process_*-of-*.json"))
    states = [json.loads(p.read_text()) for p in saved]
    if states and all(s == states[0] for s in states):
      return states[0]
    raise UserError(
        f"{directory} holds the data positions of {len(saved)} processes and "
        f"they differ; resume with {len(saved)} processes, not "
        f"{jax.process_count()}")


@ocp.args.register_with_handler(ProcessJsonHandler, for_save=True)
@dataclasses.dataclass
class ProcessJsonSave(ocp.args.CheckpointArgs):
  item: Any


@ocp.args.register_with_handler(ProcessJsonHandler, for_restore=True)
@dataclasses.dataclass
class ProcessJsonRestore(ocp.args.CheckpointArgs):
  pass


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
    """Starts an asynchronous save; `wait` blocks until it is on disk.

    Every process calls it, with its own `data_state`."""
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        data=ProcessJsonSave(data_state)))

  def restore(self, step: int, target: Any) -> tuple[Any, dict]:
    """Restores (state, this process's data position) at `step`.

    `target` is a pytree of arrays or `jax.ShapeDtypeStruct`s with shardings;
    the restored state has its structure and shardings.
    """
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    restored = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract),
        data=ProcessJsonRestore()))
    return restored["state"], restored["data"]

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()
