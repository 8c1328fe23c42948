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


@LIKELIHOODS.register("mse")
def mse_log_likelihood(out: jax.Array, x: jax.Array) -> jax.Array:
  """-sum_i (x_i - out_i)^2: a plain autoencoder's squared error as a
  "log-likelihood". Unnormalised (a Gaussian of variance 1/2 up to a
  constant), so only the reconstruction objective accepts it."""
  return -_sum_per_example(jnp.square(x - out))


# Likelihoods that are normalised densities: the ELBO and IWAE need one.
NORMALISED = ("bernoulli", "gaussian")


def diagonal_gaussian_log_prob(z: jax.Array, mu: jax.Array,
                               log_sigma: jax.Array) -> jax.Array:
  """log N(z; mu, diag(sigma^2)), summed over the last axis."""
  return jnp.sum(-0.5 * jnp.square((z - mu) * jnp.exp(-log_sigma))
                 - log_sigma - 0.5 * _LOG_2PI, axis=-1)


def log_importance_weights(log_likelihood: jax.Array, z: jax.Array,
                           mu: jax.Array, log_sigma: jax.Array) -> jax.Array:
  """log w = log p(x|z) + log p(z) - log q(z|x) for z ~ q(z|x) = N(mu,
  sigma^2) and prior N(0, I). log_likelihood (..., k), z (..., k, D), mu and
  log_sigma (..., 1, D) or broadcastable; returns (..., k)."""
  prior = diagonal_gaussian_log_prob(z, jnp.zeros_like(z), jnp.zeros_like(z))
  return log_likelihood + prior - diagonal_gaussian_log_prob(z, mu, log_sigma)


def iwae_bound(log_w: jax.Array) -> jax.Array:
  """The k-sample importance-weighted bound (Burda et al. 2016),
  log (1/k) sum_i w_i, over the last axis: (..., k) -> (...). k = 1 is the
  ELBO; it increases to log p(x) as k grows."""
  return jax.nn.logsumexp(log_w, axis=-1) - jnp.log(log_w.shape[-1])
