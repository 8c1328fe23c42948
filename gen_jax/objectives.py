"""Objective terms: pure functions, each tagged with the network it trains.

A network's objective is the weighted sum of the terms tagged with its name.
A term is `fn(inputs) -> scalar`, where `inputs` is a dict the trainer fills
for that network's update (for a GAN critic: logits of real and fake, the
critic as a function, the batches it saw, labels; for the generator: the
logits of its fakes and its own parameters; see `trainers/gan.py`).

Terms come from the registries of what they are: the adversarial losses
(`losses.GAN_LOSSES`, `config.gan.loss`), the critic's penalties
(`penalties.PENALTIES`, `config.gan.penalty`), the auxiliary-classifier loss
below, and the generator's regularisers (`G_REGULARIZERS`,
`config.gan.g_regularizer`). A term with `every=k > 1` is a lazy regulariser
(StyleGAN2's lazy R1): it is evaluated only at steps divisible by k, with
weight k times its own, so that its average strength is unchanged.
"""

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from gen_jax.registry import Registry

Inputs = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Term:
  """One summand of a network's objective; logged as metric `name`."""
  name: str
  network: str
  fn: Callable[[Inputs], jax.Array]
  weight: float = 1.0
  every: int = 1


def objective(terms: Sequence[Term], network: str, inputs: Inputs,
              step: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
  """sum of weight * term over the terms that train `network`.

  Returns (total, {term name: unweighted value}). A lazy term's value is 0 at
  the steps where it is skipped (and it is not computed there).
  """
  total = jnp.zeros((), jnp.float32)
  metrics = {}
  for t in terms:
    if t.network != network:
      continue
    if t.every > 1:
      value = jax.lax.cond(step % t.every == 0,
                           lambda: t.fn(inputs).astype(jnp.float32),
                           lambda: jnp.zeros((), jnp.float32))
      weight = t.weight * t.every
    else:
      value, weight = t.fn(inputs), t.weight
    metrics[t.name] = value
    if weight:
      total = total + weight * value
  return total, metrics


def class_cross_entropy(class_logits: jax.Array,
                        labels: jax.Array) -> jax.Array:
  """Mean softmax cross-entropy of (B, K) logits against (B,) labels: the
  auxiliary-classifier loss of AC-GAN (Odena et al. 2017, L_C)."""
  log_p = jax.nn.log_softmax(class_logits.astype(jnp.float32))
  return -jnp.mean(jnp.take_along_axis(log_p, labels[:, None], axis=1))


# -- generator regularisers (config.gan.g_regularizer) ------------------------

G_REGULARIZERS: Registry[Callable[[Inputs], jax.Array]] = Registry(
    "config.gan.g_regularizer")


@G_REGULARIZERS.register("none")
def no_regularizer(inputs: Inputs) -> jax.Array:
  del inputs
  return jnp.zeros((), jnp.float32)


@G_REGULARIZERS.register("orthogonal")
def orthogonal(inputs: Inputs) -> jax.Array:
  """BigGAN's orthogonal regularisation (Brock et al. 2019, eq. 3):
  sum over the generator's kernels W (reshaped to (fan_in, out)) of
  ||W^T W * (1 - I)||_F^2; embeddings, biases and norm scales are left out.
  With `g_regularizer_weight` = beta (BigGAN: 1e-4)."""
  total = jnp.zeros((), jnp.float32)
  flat = jax.tree_util.tree_flatten_with_path(inputs["params"])[0]
  for path, w in flat:
    if getattr(path[-1], "key", None) != "kernel":
      continue
    w = w.reshape(-1, w.shape[-1]).astype(jnp.float32)
    gram = w.T @ w
    off = gram * (1.0 - jnp.eye(gram.shape[0], dtype=gram.dtype))
    total = total + jnp.sum(off * off)
  return total
