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
"""

import os
import re
import shutil
import sys
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
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
    """Starts an asynchronous save; `wait` blocks until it is on disk."""
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        data=ocp.args.JsonSave(data_state),
        loop=ocp.args.JsonSave(loop_state)))

  def restore(self, step: int, target: Any) -> tuple[Any, dict, dict]:
    """Restores (state, data position, loop state) at `step`.

    `target` is a pytree of arrays or `jax.ShapeDtypeStruct`s with shardings;
    the restored state has its structure and shardings. A checkpoint written
    before the `loop` item existed restores an empty loop state.
    """
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    items = dict(state=ocp.args.StandardRestore(abstract),
                 data=ocp.args.JsonRestore())
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
