"""The VAE objective: reparameterisation, likelihoods and the ELBO.

Kingma & Welling 2014. With a diagonal Gaussian posterior q(z|x) =
N(mu, sigma^2) and prior N(0, I), the KL term is analytic:
KL = 0.5 * sum(mu^2 + sigma^2 - 1 - log sigma^2).
"""

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

from gen_jax.registry import Registry

# A Python float: a jnp constant here would start the JAX backend at import,
# before main.py can call jax.distributed.initialize.
_LOG_2PI = math.log(2.0 * math.pi)

# A log-likelihood maps (decoder output, x), both (B, ...), to (B,) log p(x|z).
LogLikelihood = Callable[[jax.Array, jax.Array], jax.Array]
LIKELIHOODS: Registry[LogLikelihood] = Registry("config.model.likelihood")


def reparameterize(mu: jax.Array, log_sigma: jax.Array,
                   eps: jax.Array) -> jax.Array:
  """z = mu + sigma * eps, differentiable in mu and sigma."""
  return mu + jnp.exp(log_sigma) * eps


def gaussian_kl(mu: jax.Array, log_sigma: jax.Array) -> jax.Array:
  """KL(N(mu, sigma^2) || N(0, I)) per example: (B, D) -> (B,)."""
  return 0.5 * jnp.sum(jnp.square(mu) + jnp.exp(2.0 * log_sigma) - 1.0
                       - 2.0 * log_sigma, axis=-1)


def _sum_per_example(v: jax.Array) -> jax.Array:
  return jnp.sum(v.reshape(v.shape[0], -1), axis=1)


@LIKELIHOODS.register("bernoulli")
def bernoulli_log_likelihood(logits: jax.Array, x: jax.Array) -> jax.Array:
  """sum_i x_i log p_i + (1 - x_i) log(1 - p_i), p = sigmoid(logits)."""
  return _sum_per_example(-x * jax.nn.softplus(-logits)
                          - (1.0 - x) * jax.nn.softplus(logits))


@LIKELIHOODS.register("gaussian")
def gaussian_log_likelihood(params: jax.Array, x: jax.Array) -> jax.Array:
  """log N(x; mean, sigma^2) with `params` = concat(mean, log_sigma) on the
  last axis, so the decoder outputs 2 * C channels."""
  mean, log_sigma = jnp.split(params, 2, axis=-1)
  return _sum_per_example(-0.5 * jnp.square((x - mean) * jnp.exp(-log_sigma))
                          - log_sigma - 0.5 * _LOG_2PI)


def negative_elbo(log_likelihood: jax.Array, kl: jax.Array) -> jax.Array:
  """Per-example -ELBO = -E_q[log p(x|z)] + KL, in nats: (B,)."""
  return -log_likelihood + kl
