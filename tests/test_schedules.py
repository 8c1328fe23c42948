"""Learning-rate decay (config.optim.decay) against a NumPy Adam."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import load_config
from gen_jax import config_lib, data, schedules
from gen_jax.errors import ConfigError
from gen_jax.trainers.gan import GanTrainer


def numpy_adam(grads, lrs, b1=0.9, b2=0.999, eps=1e-8):
  """Parameter after Adam steps with gradients `grads` and rates `lrs`."""
  p, m, v = 0.0, 0.0, 0.0
  for t, (g, lr) in enumerate(zip(grads, lrs), start=1):
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    p -= lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
  return p


@pytest.mark.parametrize("decay,rate", [
    ("constant", lambda t, n: 1.0),
    ("linear", lambda t, n: 1.0 - t / n),
    ("cosine", lambda t, n: 0.5 * (1 + np.cos(np.pi * t / n))),
    # CycleGAN's: constant for n // 2 updates, then linear to 0.
    ("constant_then_linear",
     lambda t, n: 1.0 if t < n // 2 else 1.0 - (t - n // 2) / (n - n // 2)),
])
def test_decay_follows_its_curve(decay, rate):
  lr, n = 0.1, 8
  grads = [1.0, -2.0, 0.5, 3.0, -1.0, 2.0, 0.25, -0.5, 1.5, 1.0]
  tx = schedules.adam(lr, 0.9, 0.999, decay, n)
  p = jnp.zeros(())
  state = tx.init(p)
  for g in grads:
    updates, state = tx.update(jnp.asarray(g), state, p)
    p = p + updates
  # Update t (from 0) uses lr * rate(t), so the last (t = n-1) uses lr/n
  # for linear (schedules.py's docstring); past the last one the rate is 0.
  lrs = [lr * max(rate(min(t, n), n), 0.0) for t in range(len(grads))]
  assert float(p) == pytest.approx(numpy_adam(grads, lrs), rel=1e-5)


def leaves_changed(a, b) -> bool:
  return any(not np.array_equal(x, y) for x, y in
             zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_gan_critic_curve_spans_n_critic_updates_per_step():
  # A linear decay over one step: G's one update has rate lr; D's two
  # (n_critic 2) have lr and lr/2; every later update has rate 0.
  c = load_config("gan_2d", "ring,small")
  c.optim.decay = "linear"
  c.train.num_steps = 1
  c.gan.n_critic = 2
  config_lib.validate(c)
  trainer = GanTrainer(c, data.get_dataset(c.data).info)
  state = trainer.init(jax.random.key(0))
  x = jnp.asarray(np.random.default_rng(0).normal(
      size=(2, c.data.batch_size, 2)), jnp.float32)
  critic = jax.jit(trainer.critic_step)
  key = jax.random.key(1)
  after = [state]
  for i in range(3):
    after.append(critic(after[-1], x[i % 2], None,
                        jax.random.fold_in(key, i))[0])
  d = lambda s: s.params["discriminator"]
  g = lambda s: s.params["generator"]
  assert leaves_changed(d(after[0]), d(after[1]))
  assert leaves_changed(d(after[1]), d(after[2]))
  assert not leaves_changed(d(after[2]), d(after[3]))
  step = jax.jit(trainer.train_step)
  first, _ = step(state, {"x": x})
  second, _ = step(first, {"x": x})
  assert leaves_changed(g(state), g(first))
  assert not leaves_changed(g(first), g(second))
  assert not leaves_changed(d(first), d(second))


def test_unknown_decay_is_a_config_error():
  c = load_config("vae", "digits,small")
  c.optim.decay = "step"
  with pytest.raises(ConfigError, match=re.escape("config.optim.decay")):
    config_lib.validate(c)


def test_clip_weights_projects_after_the_optimiser_step():
  # Plain SGD (lr 1) then the clip: p - g clipped to [-0.5, 0.5] by hand.
  tx = optax.chain(optax.sgd(1.0), schedules.clip_weights(0.5))
  p = {"w": jnp.array([0.2, -0.4, 0.1, 0.45])}
  g = {"w": jnp.array([-1.0, 0.3, 0.2, -0.01])}
  updates, _ = tx.update(g, tx.init(p), p)
  new = jax.tree.map(lambda a, b: a + b, p, updates)
  np.testing.assert_allclose(new["w"], [0.5, -0.5, -0.1, 0.46], atol=1e-7)


def test_gan_weight_clip_bounds_every_critic_weight():
  c = load_config("gan_2d", "ring,small")
  c.gan.loss = "wasserstein"
  c.gan.weight_clip = 0.01
  c.optim.d_lr = 0.1  # large steps: every weight hits the box
  config_lib.validate(c)
  trainer = GanTrainer(c, data.get_dataset(c.data).info)
  state = trainer.init(jax.random.key(0))
  x = jnp.asarray(np.random.default_rng(0).normal(
      size=(c.gan.n_critic, c.data.batch_size, 2)), jnp.float32)
  before = state.params["discriminator"]
  assert max(float(jnp.abs(w).max()) for w in jax.tree.leaves(before)) > 0.01
  state, _ = jax.jit(trainer.train_step)(state, {"x": x})
  after = jax.tree.leaves(state.params["discriminator"])
  assert max(float(jnp.abs(w).max()) for w in after) <= 0.01 + 1e-8
  # The generator is not clipped.
  assert max(float(jnp.abs(w).max()) for w in
             jax.tree.leaves(state.params["generator"])) > 0.01


def test_negative_weight_clip_is_a_config_error():
  c = load_config("dcgan", "digits,small")
  c.gan.weight_clip = -0.01
  with pytest.raises(ConfigError, match=re.escape("config.gan.weight_clip")):
    config_lib.validate(c)


def test_reset_adam_moments_restarts_adam_not_the_schedule():
  """After a reset the next update is Adam's first update (at the decayed
  rate of the step it happens at), as from a fresh optimizer; without
  `when` nothing changes."""
  tx = schedules.adam(0.1, 0.5, 0.9, "linear", 10)
  params = {"w": jnp.float32(1.0)}
  state = tx.init(params)
  for g in (3.0, -1.0, 2.0):
    _, state = tx.update({"w": jnp.float32(g)}, state, params)
  kept = schedules.reset_adam_moments(state, jnp.bool_(False))
  jax.tree.map(np.testing.assert_array_equal, kept, state)
  reset = schedules.reset_adam_moments(state, jnp.bool_(True))
  adam, sched = reset
  assert int(adam.count) == 0 and float(adam.mu["w"]) == 0.0
  assert float(adam.nu["w"]) == 0.0
  assert int(sched.count) == int(state[1].count) == 3
  update, _ = tx.update({"w": jnp.float32(5.0)}, reset, params)
  # Adam's first step is lr * sign(g) (m_hat = g, v_hat = g^2), at the
  # linear decay's rate of the 4th update: 0.1 * (1 - 3 / 10).
  np.testing.assert_allclose(float(update["w"]), -0.07, rtol=1e-5)
