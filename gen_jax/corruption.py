"""Input corruptions of the denoising autoencoder (Vincent et al. 2008):
the encoder sees corrupt(x), the loss compares the reconstruction with the
clean x. `config.ae.corruption` picks one by name, `config.ae.
corruption_level` is its level.

A corruption maps (x (B, ...), key, level, value_range) to corrupted x of
the same shape and range of values.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

from gen_jax.errors import ConfigError
from gen_jax.registry import Registry

Corruption = Callable[[jax.Array, jax.Array, float, tuple[float, float]],
                      jax.Array]
CORRUPTIONS: Registry[Corruption] = Registry("config.ae.corruption")
# name -> (low, high, what the level is) of the allowed levels.
LEVELS: dict[str, tuple[float, float, str]] = {}


def _register(name: str, low: float, high: float, what: str):
  def add(fn):
    LEVELS[name] = (low, high, what)
    return CORRUPTIONS.add(name, fn)
  return add


@_register("none", 0.0, float("inf"), "ignored")
def none(x, key, level, value_range):
  del key, level, value_range
  return x


@_register("gaussian", 0.0, float("inf"), "the noise's std s, in data units")
def gaussian(x, key, level, value_range):
  """x + s * N(0, 1), clipped to the value range."""
  lo, hi = value_range
  return jnp.clip(x + level * jax.random.normal(key, x.shape, x.dtype), lo, hi)


@_register("masking", 0.0, 1.0, "the fraction p of values set to the low end")
def masking(x, key, level, value_range):
  """Each value is set to the range's low end (black) with probability p."""
  drop = jax.random.bernoulli(key, level, x.shape)
  return jnp.where(drop, jnp.asarray(value_range[0], x.dtype), x)


@_register("salt_pepper", 0.0, 1.0,
           "the fraction p of values set to the low or high end")
def salt_pepper(x, key, level, value_range):
  """With probability p a value becomes the low or the high end of the
  range, each with probability 1/2."""
  k1, k2 = jax.random.split(key)
  hit = jax.random.bernoulli(k1, level, x.shape)
  high = jax.random.bernoulli(k2, 0.5, x.shape)
  lo, hi = value_range
  return jnp.where(hit, jnp.where(high, hi, lo).astype(x.dtype), x)


def validate(name: str, level) -> None:
  """ConfigError unless `name` is registered and `level` in its range."""
  CORRUPTIONS.get(name)
  low, high, what = LEVELS[name]
  if name == "none":
    return
  if not (low < level <= high) or level != level:
    upper = "inf)" if high == float("inf") else f"{high:g}]"
    raise ConfigError(f"config.ae.corruption_level={level!r} is not in "
                      f"({low:g}, {upper} for corruption {name!r} ({what})")
