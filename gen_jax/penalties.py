"""Discriminator regularisers, one pure function each, picked by name.

Each penalty is `fn(critic, real, fake, key) -> scalar`, where `critic` maps a
batch (B, ...) to logits (B,) and is differentiable in its input; the trainer
multiplies the result by `config.gan.penalty_weight`.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

from gen_jax.registry import Registry

Critic = Callable[[jax.Array], jax.Array]
Penalty = Callable[[Critic, jax.Array, jax.Array, jax.Array], jax.Array]

PENALTIES: Registry[Penalty] = Registry("config.gan.penalty")


def input_gradients(critic: Critic, x: jax.Array) -> jax.Array:
  """d critic(x)_i / d x_i for each example i: shape of x.

  Examples are independent in the critic (no batch norm), so the gradient of
  the sum gives every example's own gradient in one backward pass.
  """
  return jax.grad(lambda v: jnp.sum(critic(v)))(x)


def _per_example_norm(g: jax.Array) -> jax.Array:
  flat = g.reshape(g.shape[0], -1)
  # The epsilon keeps the gradient of the norm finite where g == 0.
  return jnp.sqrt(jnp.sum(flat * flat, axis=1) + 1e-12)


def _broadcast_uniform(key, x):
  return jax.random.uniform(key, (x.shape[0],) + (1,) * (x.ndim - 1), x.dtype)


@PENALTIES.register("none")
def no_penalty(critic, real, fake, key):
  del critic, real, fake, key
  return jnp.zeros((), jnp.float32)


@PENALTIES.register("wgan_gp")
def wgan_gp(critic, real, fake, key):
  """E[(||grad D(x_hat)||_2 - 1)^2], x_hat = e x + (1 - e) x_fake, e ~ U[0, 1].

  Gulrajani et al. 2017, Algorithm 1.
  """
  eps = _broadcast_uniform(key, real)
  x_hat = eps * real + (1.0 - eps) * fake
  return jnp.mean(jnp.square(_per_example_norm(input_gradients(critic, x_hat))
                             - 1.0))


@PENALTIES.register("dragan")
def dragan(critic, real, fake, key):
  """E[(||grad D(x + delta)||_2 - 1)^2] around the data.

  Kodali et al. 2017: delta = a * 0.5 * std(x) * u, u ~ U[0, 1] per element,
  a ~ U[0, 1] per example (compare_gan's `dragan_penalty`).
  """
  del fake
  key_a, key_u = jax.random.split(key)
  std = jnp.std(real)
  delta = 0.5 * std * jax.random.uniform(key_u, real.shape, real.dtype)
  x_hat = real + _broadcast_uniform(key_a, real) * delta
  return jnp.mean(jnp.square(_per_example_norm(input_gradients(critic, x_hat))
                             - 1.0))


@PENALTIES.register("r1")
def r1(critic, real, fake, key):
  """0.5 * E[||grad D(x)||_2^2] on real data (Mescheder et al. 2018).

  With penalty_weight = gamma this is the paper's gamma / 2 * E[||grad||^2].
  """
  del fake, key
  g = input_gradients(critic, real).reshape(real.shape[0], -1)
  return 0.5 * jnp.mean(jnp.sum(g * g, axis=1))
