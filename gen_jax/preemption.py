"""SIGTERM (preemption of TPU and spot VMs) and SIGINT (Ctrl-C): save, stop.

`Watcher.reached(step)`, called by the loop after every step, says when to
save a checkpoint at `step` and stop. Single process: a signal handler sets a
flag, and the step in flight when it arrives is the one saved. Several
processes (jax.distributed initialised): JAX's preemption service already
catches SIGTERM and agrees with all processes on one step to save at
(`multihost_utils.reached_preemption_sync_point`); Ctrl-C is passed on to it as
SIGTERM, so that every process stops at the same step. A second Ctrl-C
interrupts at once (KeyboardInterrupt). With several processes and JAX's
preemption service switched off (`jax_enable_preemption_service`), signals
keep their default effect: the processes could not agree on a step.
"""

import os
import signal
import sys
import threading

import jax
from jax.experimental import multihost_utils


class Watcher:
  """Installs the handlers on creation; `close` restores the previous ones."""

  def __init__(self):
    self.signal_name: str | None = None
    distributed = jax.distributed.is_initialized()
    # JAX's service agrees on the step across processes (and handles SIGTERM).
    self._sync = distributed and jax.config.jax_enable_preemption_service
    self._previous = {}
    if distributed and not self._sync:
      return
    if threading.current_thread() is not threading.main_thread():
      return  # Python sets signal handlers from the main thread only
    self._install(signal.SIGINT, self._on_sigint)
    if not self._sync:
      self._install(signal.SIGTERM, self._on_sigterm)

  def _install(self, signum, handler) -> None:
    self._previous[signum] = signal.signal(signum, handler)

  def _on_sigterm(self, signum, frame) -> None:
    del signum, frame
    self.signal_name = self.signal_name or "SIGTERM"

  def _on_sigint(self, signum, frame) -> None:
    del signum, frame
    if self.signal_name == "SIGINT":  # the second Ctrl-C
      raise KeyboardInterrupt
    self.signal_name = "SIGINT"
    print("\nCtrl-C: finishing this step and saving a checkpoint; press "
          "Ctrl-C again to stop at once", file=sys.stderr)
    if self._sync:
      os.kill(os.getpid(), signal.SIGTERM)  # JAX's handler tells the others

  def reached(self, step: int) -> bool:
    """True when the loop should save at `step` and stop (cheap: no sync)."""
    if self._sync:
      # Every process calls this at every step, as JAX's protocol requires.
      if multihost_utils.reached_preemption_sync_point(step):
        self.signal_name = self.signal_name or "SIGTERM"
        return True
      return False
    return self.signal_name is not None

  def close(self) -> None:
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    self._previous = {}
