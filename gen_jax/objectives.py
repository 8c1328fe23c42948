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

A term may keep running state in `state.aux` (StyleGAN2's path-length mean):
it names those entries in `state`, reads them from `inputs['aux']` and
returns (value, {entry: new value}); `objective_and_updates` collects the
new values (the old ones at the steps a lazy term skips).
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
  # aux entries the term updates: fn returns (value, {entry: new value})
  state: tuple[str, ...] = ()


def objective(terms: Sequence[Term], network: str, inputs: Inputs,
              step: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
  """sum of weight * term over the terms that train `network`.

  Returns (total, {term name: unweighted value}). A lazy term's value is 0 at
  the steps where it is skipped (and it is not computed there).
  """
  total, metrics, _ = objective_and_updates(terms, network, inputs, step)
  return total, metrics


def objective_and_updates(terms: Sequence[Term], network: str,
                          inputs: Inputs, step: jax.Array):
  """`objective`, plus the new values of the aux entries its terms keep
  (`Term.state`): (total, metrics, {entry: new value})."""
  total = jnp.zeros((), jnp.float32)
  metrics, updates = {}, {}
  for t in terms:
    if t.network != network:
      continue
    call = lambda t=t: _call(t, inputs)
    if t.every > 1:
      skip = lambda t=t: (jnp.zeros((), jnp.float32),
                          {k: inputs["aux"][k] for k in t.state})
      value, new = jax.lax.cond(step % t.every == 0, call, skip)
      weight = t.weight * t.every
    else:
      (value, new), weight = call(), t.weight
    metrics[t.name] = value
    updates.update(new)
    if weight:
      total = total + weight * value
  return total, metrics, updates


def _call(t: Term, inputs: Inputs):
  if not t.state:
    return t.fn(inputs).astype(jnp.float32), {}
  value, new = t.fn(inputs)
  return value.astype(jnp.float32), {k: new[k] for k in t.state}


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


# Entries of state.aux a generator regulariser keeps, with initial values.
G_REGULARIZER_STATE = {"path_length": {"pl_mean": 0.0}}


@G_REGULARIZERS.register("path_length")
def path_length(inputs: Inputs):
  """StyleGAN2's path-length regulariser (Karras et al. 2020, eq. 4):
  E[(||J_w^T y||_2 - a)^2], y ~ N(0, I) / sqrt(H W) an image-shaped
  direction, J_w the Jacobian of the synthesis network at the styles w, a
  the running mean of the lengths.

  Needs from the trainer: `ws` (B, num_ws, w_dim) (mapped, not detached:
  the penalty trains the mapping network too), `synthesis` (ws -> images,
  noise fixed), `key`, `aux['pl_mean']`, `pl_decay` (0.01) and
  `pl_batch_shrink` (the penalty uses the first B / shrink examples). As
  in the official code, the length is sqrt(mean over the num_ws styles of
  the squared gradient summed over w_dim), and the penalty uses a already
  moved toward this batch's mean length: a <- a + decay (mean - a).
  Returns (penalty, {'pl_mean': new a}).
  """
  ws = inputs["ws"]
  n = max(1, ws.shape[0] // inputs["pl_batch_shrink"])
  ws = ws[:n]
  fake, vjp = jax.vjp(inputs["synthesis"], ws)
  h, w = fake.shape[1], fake.shape[2]
  y = jax.random.normal(jax.random.fold_in(inputs["key"], 11), fake.shape,
                        fake.dtype) / jnp.sqrt(h * w)
  grads = vjp(y)[0]                                     # (n, num_ws, w_dim)
  lengths = jnp.sqrt(jnp.mean(jnp.sum(jnp.square(grads), axis=2), axis=1))
  old = inputs["aux"]["pl_mean"]
  pl_mean = old + inputs["pl_decay"] * (
      jnp.mean(jax.lax.stop_gradient(lengths)) - old)
  penalty = jnp.mean(jnp.square(lengths - jax.lax.stop_gradient(pl_mean)))
  return penalty, {"pl_mean": pl_mean}
