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

  The gradient of the summed logits is every example's own gradient only if
  examples do not interact in the critic. The trainer's critic ensures that:
  it holds batch statistics (batch norm, minibatch std) fixed at this
  batch's values (`per_example`, models/layers.py), so with d_norm=batch the
  penalty sees the gradient of the critic as normalised for this batch,
  without the O(1/B) path through the statistics.
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
  """E[(||grad D(x_hat)||_2 - 1)^2] around the data (Kodali et al. 2017).

  The DRAGAN authors' released code: x_hat = x + a * 0.5 * std(x) * u, with
  u ~ U[0, 1] per element (a one-sided perturbation), a ~ U[0, 1] per
  example and std over the whole batch. compare_gan's variant is
  `dragan_compare_gan`.
  """
  del fake
  key_a, key_u = jax.random.split(key)
  std = jnp.std(real)
  delta = 0.5 * std * jax.random.uniform(key_u, real.shape, real.dtype)
  x_hat = real + _broadcast_uniform(key_a, real) * delta
  return jnp.mean(jnp.square(_per_example_norm(input_gradients(critic, x_hat))
                             - 1.0))


@PENALTIES.register("dragan_compare_gan")
def dragan_compare_gan(critic, real, fake, key):
  """compare_gan's `dragan_penalty` (the code of Lucic et al. 2018 and
  Kurach et al. 2019): E[(sqrt(1e-4 + ||grad D(x_hat)||^2) - 1)^2], x_hat = clip(x + std(x) *
  (u - 0.5)), u ~ U[0, 1] per element, std over the whole batch.

  compare_gan clips to its image range [0, 1]; this clips to [-1, 1], the
  GAN configs' image range (data.value_range): use it for images in [-1, 1]
  only (2D points, for one, lie outside it).
  """
  del fake
  noise = jax.random.uniform(key, real.shape, real.dtype) - 0.5
  x_hat = jnp.clip(real + jnp.std(real) * noise, -1.0, 1.0)
  g = input_gradients(critic, x_hat).reshape(real.shape[0], -1)
  slopes = jnp.sqrt(1e-4 + jnp.sum(g * g, axis=1))
  return jnp.mean(jnp.square(slopes - 1.0))


@PENALTIES.register("r1")
def r1(critic, real, fake, key):
  """0.5 * E[||grad D(x)||_2^2] on real data (Mescheder et al. 2018).

  With penalty_weight = gamma this is the paper's gamma / 2 * E[||grad||^2].
  """
  del fake, key
  g = input_gradients(critic, real).reshape(real.shape[0], -1)
  return 0.5 * jnp.mean(jnp.sum(g * g, axis=1))
