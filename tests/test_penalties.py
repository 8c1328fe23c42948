"""Penalties against finite-difference estimates of the critic's gradient."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax import penalties

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
  assert penalties.PENALTIES.names() == ["dragan", "none", "r1", "wgan_gp"]


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
