"""What a train step does when a loss or the updated state goes NaN or Inf.

`Guarded(trainer, on_nonfinite)` is the trainer with its step wrapped by
`guard(train_step, on_nonfinite)`, which works for any trainer's pure step:
it adds the metric `nonfinite` (1.0 when a loss or any floating leaf of the
new state is NaN/Inf, else 0.0) and, for `config.train.on_nonfinite='skip'`, keeps the old
state except for the step counter (so the PRNG keys, which are
`fold_in(state.key, state.step)`, and the data stream move on). The check runs
inside the compiled step; the loop looks at the flags only when it logs,
evaluates or saves (`check`), so there is no extra host sync per step, and
every state it saves has been checked.
"""

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.errors import NonFiniteError
from gen_jax.trainers.base import Wrapper

FLAG = "nonfinite"


def _is_key(x) -> bool:
  return jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def all_finite(tree: Any) -> jax.Array:
  """True when every floating-point leaf of `tree` is finite (a scalar)."""
  leaves = [x for x in jax.tree.leaves(tree)
            if not _is_key(x) and jnp.issubdtype(x.dtype, jnp.inexact)]
  if not leaves:
    return jnp.array(True)
  return jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]).all()


def guard(train_step: Callable, on_nonfinite: str) -> Callable:
  """`train_step(state, batch) -> (state, metrics)` with the `nonfinite` flag.

  `state` must have a `step` field (both trainers' states do). With 'skip', a
  non-finite update is dropped: every leaf keeps its old value (parameters,
  both optimisers' moments and counts, EMA weights, batch-norm statistics)
  except `step` and PRNG keys, which advance as if the update had happened.
  """
  skip = on_nonfinite == "skip"

  def step(state, batch):
    new, metrics = train_step(state, batch)
    finite = jnp.logical_and(all_finite(metrics), all_finite(new))
    if skip:
      kept = jax.tree.map(
          lambda n, o: n if _is_key(n) else jnp.where(finite, n, o),
          new, state)
      new = kept.replace(step=new.step)
    metrics = dict(metrics)
    metrics[FLAG] = jnp.where(finite, 0.0, 1.0).astype(jnp.float32)
    return new, metrics

  return step


class Guarded(Wrapper):
  """`trainer` whose `train_step` is `guard(trainer.train_step, ...)`."""

  def __init__(self, trainer, on_nonfinite: str):
    super().__init__(trainer)
    self.on_nonfinite = on_nonfinite
    self.train_step = self.phase_step(0)

  def phase_step(self, phase: int):
    return guard(self.inner.phase_step(phase), self.on_nonfinite)


def check(window: Sequence[dict[str, np.ndarray]], step: int,
          on_nonfinite: str) -> None:
  """Raises NonFiniteError for 'stop' if a step of `window` was flagged.

  `window`: host metrics of the consecutive steps ending at `step`. The
  message names the first flagged step and its non-finite losses.
  """
  if on_nonfinite != "stop":
    return
  show = lambda v: (f"{float(v):.4g}" if np.ndim(v) == 0
                    else str(np.round(np.asarray(v, np.float64), 4).tolist()))
  for i, m in enumerate(window):
    if np.any(m[FLAG]):  # a scalar, or one flag per seed
      bad_step = step - len(window) + 1 + i
      values = {k: np.asarray(v) for k, v in m.items() if k != FLAG}
      bad = {k: v for k, v in values.items() if not np.all(np.isfinite(v))}
      what = (", ".join(f"{k}={show(v) if np.ndim(v) else float(v)}"
                        for k, v in sorted(bad.items())) if bad
              else "finite losses but a non-finite update (" + ", ".join(
                  f"{k}={show(v)}" for k, v in sorted(values.items())) + ")")
      raise NonFiniteError(
          f"training diverged at step {bad_step}: {what}; stopped without "
          "saving it (config.train.on_nonfinite='stop'; 'skip' drops such "
          "updates and goes on)")
