"""Penalties against finite-difference estimates of the critic's gradient."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config
from gen_jax import config_lib, data, penalties
from gen_jax.models import dcgan, mlp
from gen_jax.models.layers import BN_MOMENTUM
from gen_jax.trainers.gan import GanTrainer

jax.config.update("jax_enable_x64", False)

W1 = np.random.default_rng(0).normal(size=(6, 5))
W2 = np.random.default_rng(1).normal(size=(5,))


def critic(x):
  """A small nonlinear critic: (B, 2, 3) -> (B,)."""
  h = jnp.tanh(x.reshape(x.shape[0], -1) @ W1)
  return h @ W2 + 0.1 * jnp.sum(x.reshape(x.shape[0], -1) ** 2, axis=1)


def critic_np(x):
  h = np.tanh(x.reshape(-1) @ W1)
  return h @ W2 + 0.1 * np.sum(x ** 2)


def fd_grad_norm(x, h=1e-5):
  """Central finite differences of critic_np at one example (float64)."""
  x = np.asarray(x, np.float64)
  g = np.zeros_like(x)
  for i in np.ndindex(x.shape):
    e = np.zeros_like(x)
    e[i] = h
    g[i] = (critic_np(x + e) - critic_np(x - e)) / (2 * h)
  return np.linalg.norm(g)


REAL = np.random.default_rng(2).normal(size=(4, 2, 3)).astype(np.float32)
FAKE = np.random.default_rng(3).normal(size=(4, 2, 3)).astype(np.float32)
KEY = jax.random.key(7)


def test_every_penalty_is_registered():
  assert penalties.PENALTIES.names() == ["dragan", "dragan_compare_gan",
                                         "none", "r1", "wgan_gp"]


def test_wgan_gp_matches_finite_differences():
  eps = np.asarray(jax.random.uniform(KEY, (4, 1, 1)))
  x_hat = eps * REAL + (1 - eps) * FAKE
  expected = np.mean([(fd_grad_norm(x) - 1) ** 2 for x in x_hat])
  got = penalties.PENALTIES.get("wgan_gp")(critic, REAL, FAKE, KEY)
  np.testing.assert_allclose(got, expected, rtol=1e-4)


def test_r1_matches_finite_differences():
  expected = 0.5 * np.mean([fd_grad_norm(x) ** 2 for x in REAL])
  got = penalties.PENALTIES.get("r1")(critic, REAL, FAKE, KEY)
  np.testing.assert_allclose(got, expected, rtol=1e-4)


def test_dragan_matches_finite_differences_at_its_perturbed_points():
  key_a, key_u = jax.random.split(KEY)
  delta = 0.5 * REAL.std() * np.asarray(
      jax.random.uniform(key_u, REAL.shape))
  x_hat = REAL + np.asarray(jax.random.uniform(key_a, (4, 1, 1))) * delta
  expected = np.mean([(fd_grad_norm(x) - 1) ** 2 for x in x_hat])
  got = penalties.PENALTIES.get("dragan")(critic, REAL, FAKE, KEY)
  np.testing.assert_allclose(got, expected, rtol=1e-4)


def test_dragan_compare_gan_matches_finite_differences_at_its_points():
  # compare_gan: x + std * (U - 0.5), clipped (here to [-1, 1]), and
  # slopes sqrt(1e-4 + ||g||^2).
  u = np.asarray(jax.random.uniform(KEY, REAL.shape))
  x_hat = np.clip(REAL + REAL.std() * (u - 0.5), -1.0, 1.0)
  expected = np.mean([(np.sqrt(1e-4 + fd_grad_norm(x) ** 2) - 1) ** 2
                      for x in x_hat])
  got = penalties.PENALTIES.get("dragan_compare_gan")(critic, REAL, FAKE, KEY)
  np.testing.assert_allclose(got, expected, rtol=1e-4)


def test_gradient_penalty_is_zero_for_a_unit_slope_critic():
  # D(x) = <a, x> with ||a|| = 1 has gradient norm 1 everywhere.
  a = jnp.ones((6,)) / np.sqrt(6.0)
  linear = lambda x: x.reshape(x.shape[0], -1) @ a
  got = penalties.PENALTIES.get("wgan_gp")(linear, REAL, FAKE, KEY)
  assert abs(float(got)) < 1e-6


@pytest.mark.parametrize("name", ["wgan_gp", "dragan", "r1"])
def test_penalty_is_differentiable_in_critic_parameters(name):
  def loss(scale):
    return penalties.PENALTIES.get(name)(lambda x: scale * critic(x), REAL,
                                         FAKE, KEY)
  g = jax.grad(loss)(1.5)
  fd = (loss(1.5 + 1e-3) - loss(1.5 - 1e-3)) / 2e-3
  np.testing.assert_allclose(g, fd, rtol=2e-2)


# -- batch-norm critics: per-example gradients ------------------------------

def _batch_norm_critic(arch):
  """A critic with training-mode batch norm, its variables and a batch."""
  rng = np.random.default_rng(4)
  if arch == "dcgan":
    d = dcgan.Discriminator(width=4, norm="batch")
    x = rng.normal(size=(6, 16, 16, 1)).astype(np.float32)
  else:
    d = mlp.Discriminator(hidden=(8, 8), norm="batch")
    x = rng.normal(size=(6, 3)).astype(np.float32)
  variables = d.init(jax.random.key(0), x, train=False)
  # Non-trivial batch-norm affine parameters.
  params = jax.tree_util.tree_map_with_path(
      lambda p, v: v + 0.3 * jax.random.normal(
          jax.random.key(len(str(p))), v.shape)
      if "BatchNorm" in str(p) else v, variables["params"])
  return d, {**variables, "params": params}, jnp.asarray(x)


def _at_batch_statistics(d, variables, x):
  """The critic in evaluation mode with running statistics equal to this
  batch's: flax's own batch norm (a training pass from zeroed averages
  leaves (1 - momentum) * the batch statistics), a fixed function per
  example, independent of `per_example`."""
  zeros = jax.tree.map(jnp.zeros_like, variables["batch_stats"])
  _, new = d.apply({"params": variables["params"], "batch_stats": zeros}, x,
                   train=True, mutable=["batch_stats"])
  stats = jax.tree.map(lambda v: v / (1.0 - BN_MOMENTUM), new["batch_stats"])
  return lambda v: d.apply({"params": variables["params"],
                            "batch_stats": stats}, v, train=False)


def _blocks(jac, n):
  """(n, n, features) per-example blocks of a jacobian of (n,) logits."""
  return np.asarray(jac).reshape(n, n, -1)


@pytest.mark.parametrize("arch", ["dcgan", "mlp"])
def test_batch_norm_critic_gradients_are_per_example(arch):
  d, variables, x = _batch_norm_critic(arch)
  n = x.shape[0]
  train_critic = lambda v: d.apply(variables, v, train=True,
                                   mutable=["batch_stats"])[0]
  penalty_critic = lambda v: d.apply(variables, v, train=True,
                                     per_example=True,
                                     mutable=["batch_stats"])[0]
  # The plain training-mode critic mixes examples (what issue 18 found) ...
  mixed = _blocks(jax.jacrev(train_critic)(x), n)
  off = ~np.eye(n, dtype=bool)
  assert np.abs(mixed[off]).max() > 1e-4
  # ... the penalties' critic: same logits, a block-diagonal jacobian ...
  np.testing.assert_allclose(penalty_critic(x), train_critic(x), atol=1e-6)
  jac = _blocks(jax.jacrev(penalty_critic)(x), n)
  assert np.abs(jac[off]).max() == 0.0
  # ... whose blocks are the gradients of the critic normalised with this
  # batch's statistics, and what input_gradients returns.
  reference = _blocks(jax.jacrev(_at_batch_statistics(d, variables, x))(x), n)
  diag = jac[np.arange(n), np.arange(n)]
  ref_diag = reference[np.arange(n), np.arange(n)]
  np.testing.assert_allclose(diag, ref_diag, rtol=1e-4, atol=1e-6)
  got = np.asarray(penalties.input_gradients(penalty_critic, x))
  np.testing.assert_allclose(got.reshape(n, -1), ref_diag, rtol=1e-4,
                             atol=1e-6)


def test_minibatch_std_is_a_constant_of_the_penalty_pass():
  d = mlp.Discriminator(hidden=(8,), minibatch_std=0)
  x = jnp.asarray(np.random.default_rng(5).normal(size=(5, 3)), jnp.float32)
  variables = d.init(jax.random.key(0), x)
  plain = _blocks(jax.jacrev(lambda v: d.apply(variables, v))(x), 5)
  held = _blocks(jax.jacrev(
      lambda v: d.apply(variables, v, per_example=True))(x), 5)
  off = ~np.eye(5, dtype=bool)
  assert np.abs(plain[off]).max() > 1e-5 and np.abs(held[off]).max() == 0.0


def test_trainer_penalises_per_example_gradients_of_a_batch_norm_critic():
  c = load_config("dcgan", "digits,small")
  c.gan.penalty, c.gan.penalty_weight = "r1", 1.0
  config_lib.validate(c)
  trainer = GanTrainer(c, data.get_dataset(c.data).info)
  state = trainer.init(jax.random.key(0))
  real = jnp.asarray(np.random.default_rng(6).uniform(
      -1, 1, size=(8, *trainer.info.example_shape)), jnp.float32)
  d_params = state.params["discriminator"]
  d_state = state.model_state["discriminator"]
  _, (_, metrics) = trainer._d_objective(  # pylint: disable=protected-access
      d_params, d_state, real, real, None, None, jax.random.key(1),
      state.step)
  variables = {"params": d_params, **d_state}
  reference = _blocks(jax.jacrev(_at_batch_statistics(
      trainer.discriminator, variables, real))(real), 8)
  g = reference[np.arange(8), np.arange(8)]
  expected = 0.5 * np.mean(np.sum(g * g, axis=1))
  np.testing.assert_allclose(metrics["penalty"], expected, rtol=1e-4)
