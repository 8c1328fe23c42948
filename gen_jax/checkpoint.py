"""Checkpoints of the training state, the data stream's position and the loop.

A thin wrapper over Orbax's `CheckpointManager` in `workdir/checkpoints`, with
three items saved together at one step: `state` (the train-state pytree,
restored with the shardings of a target), `data` (the input stream's JSON
position, whatever `Stream.get_state` returns) and `loop` (JSON: the training
loop's own state, e.g. the metrics of steps not yet logged), so that a resumed
run continues exactly as if it had never stopped.

Orbax writes a step into `<step>.orbax-checkpoint-tmp*` and renames it when
complete, so a save cut short by a kill leaves only a tmp dir, which is
ignored and removed on the next start. A complete-looking checkpoint that
cannot be read (files lost or truncated) is skipped with a warning by
`restore_latest`, which resumes from the newest readable one and moves the
unreadable ones aside to `checkpoints_unreadable/` (never deleting them).

The data position is per process: each process writes its own
`data/process_I-of-N.json` (a file-backed pipeline's iterator state may differ
between processes), and reads its own back. A checkpoint written by N
processes resumes with M != N processes only if all N positions are the same
(the embedded datasets: the position is a global batch count).
"""

import dataclasses
import json
import os
import re
import shutil
import sys
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath
from jax.experimental import multihost_utils

from gen_jax.errors import UserError

_STEP_DIR = re.compile(r"^\d+$")


def saved_steps(directory: str) -> list[int]:
  """Steps with a committed checkpoint dir in `directory`, without Orbax (and
  without creating anything)."""
  if not os.path.isdir(directory):
    return []
  return sorted(int(d) for d in os.listdir(directory)
                if _STEP_DIR.match(d)
                and os.path.isdir(os.path.join(directory, d)))


def _quiet_aborted_reads() -> None:
  """After a failed restore, TensorStore's pending reads call back into the
  closed asyncio loop of Orbax, and each prints an 'Event loop is closed'
  traceback (dozens) via sys.unraisablehook: harmless, so dropped."""
  previous = sys.unraisablehook
  if getattr(previous, "gen_jax_quiet", False):
    return

  def hook(unraisable):
    e = unraisable.exc_value
    if not (isinstance(e, RuntimeError) and str(e) == "Event loop is closed"):
      previous(unraisable)
  hook.gen_jax_quiet = True
  sys.unraisablehook = hook


def _reason(e: Exception) -> str:
  lines = str(e).strip().splitlines()
  return f"{type(e).__name__}: {lines[0][:160] if lines else ''}"

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
                                             create=True,
                                             cleanup_tmp_directories=True),
        item_names=("state", "data", "loop"))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def save(self, step: int, state: Any, data_state: dict,
           loop_state: dict) -> None:
    """Starts an asynchronous save; `wait` blocks until it is on disk.

    Every process calls it, with its own `data_state`."""
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        data=ProcessJsonSave(data_state),
        loop=ocp.args.JsonSave(loop_state)))

  def restore(self, step: int, target: Any) -> tuple[Any, dict, dict]:
    """Restores (state, this process's data position, loop state) at `step`.

    `target` is a pytree of arrays or `jax.ShapeDtypeStruct`s with shardings;
    the restored state has its structure and shardings. A checkpoint written
    before the `loop` item existed restores an empty loop state.
    """
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    items = dict(state=ocp.args.StandardRestore(abstract),
                 data=ProcessJsonRestore())
    has_loop = os.path.isdir(os.path.join(self.directory, str(step), "loop"))
    if has_loop:
      items["loop"] = ocp.args.JsonRestore()
    restored = self._manager.restore(step, args=ocp.args.Composite(**items))
    return (restored["state"], restored["data"],
            restored["loop"] if has_loop else {})

  def restore_latest(self, target: Any) -> tuple[int, Any, dict, dict] | None:
    """(step, state, data position, loop state) of the newest readable
    checkpoint, or None if there is none.

    Unreadable newer ones are reported and moved aside once a readable one is
    found (a new save at their step would otherwise collide with them, and
    `max_to_keep` would count them); if none is readable, nothing is moved and
    a UserError lists each step and why it failed.
    """
    failures = []
    for step in reversed(self.all_steps()):
      try:
        restored, reason = self.restore(step, target), None
      except UserError:  # readable, but not by this many processes
        raise
      except Exception as e:  # noqa: BLE001 -- any failure means unreadable
        _quiet_aborted_reads()
        reason = _reason(e)
      if not _everywhere(reason is None):  # all processes resume together
        failures.append((step, reason or "unreadable on another process"))
        _warn(f"warning: checkpoint at step {step} cannot be restored "
              f"({failures[-1][1]}); trying the one before")
        continue
      if failures:
        self._set_aside([s for s, _ in failures])
        _warn(f"warning: resuming from step {step}, the newest readable "
              f"checkpoint; unreadable step(s) "
              f"{', '.join(str(s) for s, _ in failures)} moved to "
              f"{self.directory}_unreadable/")
      return (step, *restored)
    if failures:
      listed = "; ".join(f"step {s}: {r}" for s, r in failures)
      raise UserError(f"no checkpoint in {self.directory} can be restored "
                      f"({listed}); move that directory away to start over")
    return None

  def _set_aside(self, steps: list[int]) -> None:
    if jax.process_index() == 0:
      aside = self.directory + "_unreadable"
      os.makedirs(aside, exist_ok=True)
      for step in steps:
        dest, n = os.path.join(aside, str(step)), 1
        while os.path.exists(dest):
          dest, n = os.path.join(aside, f"{step}.{n}"), n + 1
        shutil.move(os.path.join(self.directory, str(step)), dest)
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices("gen_jax_checkpoints_set_aside")
    self._manager.reload()

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()


def _everywhere(ok: bool) -> bool:
  """True if `ok` on every process (one small all-gather per process)."""
  if jax.process_count() == 1:
    return ok
  return bool(np.all(multihost_utils.process_allgather(np.array(ok))))


def _warn(message: str) -> None:
  if jax.process_index() == 0:
    print(message, file=sys.stderr)
