"""Wrappers around a network's update: they take an update function and
return one, so that tricks compose without living inside a trainer.

An update here is `update(state, *args) -> (state, metrics)` on a
`TrainState`, or, for `unroll`, `update(carry, key, *args) -> (carry,
metrics)` on one network's (params, model state, optimizer state).
"""

from collections.abc import Callable

import jax


def with_ema(update: Callable, network: str, decay: float) -> Callable:
  """`update`, then ema[network] = decay * ema + (1 - decay) * params.

  Sampling with the EMA weights (Yazici et al. 2019; Karras et al. 2018)
  smooths the generator's iterates.
  """

  def wrapped(state, *args):
    state, metrics = update(state, *args)
    ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p,
                       state.ema[network], state.params[network])
    return state.replace(ema={**state.ema, network: ema}), metrics

  return wrapped


def unroll(update: Callable, steps: int) -> Callable:
  """A look-ahead: `look_ahead(carry, key, *args)` applies `update` `steps`
  times (key split once per update) and returns the final carry, without
  stopping gradients, so a caller can differentiate through the updates
  (unrolled GANs, Metz et al. 2017). A Python loop: XLA:CPU runs
  convolutions inside while loops many times slower."""

  def look_ahead(carry, key, *args):
    for k in jax.random.split(key, steps):
      carry, _ = update(carry, k, *args)
    return carry

  return look_ahead
