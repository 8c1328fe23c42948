"""Learning-rate decay over a run: `config.optim.decay`.

The rate starts at the configured lr and follows the named curve over the
run's T updates (`train.num_steps` steps; the critic updates n_critic times
per step, so its T is num_steps * n_critic): update t = 0, ..., T-1 uses
lr * (1 - t/T) (linear) or lr * (1 + cos(pi t/T)) / 2 (cosine) (optax's
schedules). The curve reaches 0 one update after the last: the last update
uses lr/T (linear) or about lr * (pi/T)^2 / 4 (cosine), not 0. The
optimiser state's update count drives it, so a resumed run continues the
same curve, unless `train.num_steps` is raised on resume, which stretches
the rest of it.

`constant_then_linear` is CycleGAN's (Zhu et al. 2017, section 4: "keep the
same learning rate for the first 100 epochs and linearly decay the rate to
zero over the next 100"): lr for the first h = T // 2 updates, then update
t >= h uses lr * (1 - (t - h) / (T - h)).
"""

import jax
import jax.numpy as jnp
import optax

from gen_jax.registry import Registry

DECAYS: Registry = Registry("config.optim.decay")


@DECAYS.register("constant")
def _constant(lr: float, updates: int) -> optax.ScalarOrSchedule:
  del updates
  return lr


@DECAYS.register("linear")
def _linear(lr: float, updates: int) -> optax.ScalarOrSchedule:
  return optax.linear_schedule(lr, 0.0, updates)


@DECAYS.register("cosine")
def _cosine(lr: float, updates: int) -> optax.ScalarOrSchedule:
  return optax.cosine_decay_schedule(lr, updates)


@DECAYS.register("constant_then_linear")
def _constant_then_linear(lr: float, updates: int) -> optax.ScalarOrSchedule:
  hold = updates // 2
  return optax.join_schedules(
      [optax.constant_schedule(lr),
       optax.linear_schedule(lr, 0.0, updates - hold)], [hold])


def adam(lr: float, b1: float, b2: float, decay: str, updates: int,
         **kwargs) -> optax.GradientTransformation:
  """optax.adam whose rate decays by `decay` over `updates` updates."""
  return optax.adam(DECAYS.get(decay)(lr, max(updates, 1)), b1=b1, b2=b2,
                    **kwargs)


def reset_adam_moments(opt_state, when):
  """`opt_state` with every Adam state in it (optax.ScaleByAdamState: the
  moments and the bias-correction count) back at its initial zeros where
  `when` (a scalar bool array) is true; other states (a learning-rate
  schedule's count) untouched. Progressive growing's optimizer reset
  (gen_jax/trainers/gan.py)."""
  is_adam = lambda x: isinstance(x, optax.ScaleByAdamState)

  def reset(x):
    if not is_adam(x):
      return x
    return jax.tree.map(lambda v: jnp.where(when, jnp.zeros_like(v), v), x)

  return jax.tree.map(reset, opt_state, is_leaf=is_adam)


def clip_weights(c: float) -> optax.GradientTransformation:
  """Chained after an optimiser: the updated parameters are clipped to
  [-c, c] (WGAN's critic weight clipping, Arjovsky et al. 2017: c = 0.01).
  The update becomes clip(p + u, -c, c) - p, so the parameters after
  `optax.apply_updates` lie in [-c, c] up to one rounding."""
  def update(updates, state, params=None):
    if params is None:
      raise ValueError("clip_weights needs the parameters")
    return jax.tree.map(lambda p, u: jnp.clip(p + u, -c, c) - p,
                        params, updates), state

  return optax.GradientTransformation(lambda params: optax.EmptyState(),
                                      update)
