"""Input transformations of the discriminator against mode collapse.

Pure functions of a batch; `GanTrainer` applies them to every batch the
discriminator sees (real and fake, in the critic and the generator updates):
first instance noise, then packing.

- `pack` (PacGAN, Lin et al. 2018): the discriminator judges m samples at a
  time, concatenated on the channel (images) or feature (points) axis.
- `instance_noise` (Sønderby et al. 2017; Arjovsky & Bottou 2017): Gaussian
  noise on the discriminator's inputs, optionally annealed to 0.
"""

import jax
import jax.numpy as jnp


def packed_shape(example_shape: tuple[int, ...], pack: int) -> tuple[int, ...]:
  """The discriminator's example shape: (H, W, m*C) or (m*D,)."""
  return (*example_shape[:-1], pack * example_shape[-1])


def pack(x: jax.Array, m: int) -> jax.Array:
  """(B, ..., C) -> (B/m, ..., m*C): pack i holds samples i*m .. i*m + m-1.

  Sample j of a pack fills channels j*C .. (j+1)*C - 1. Batches are shuffled,
  so consecutive samples are independent draws; for fakes each sample has its
  own noise vector.
  """
  if m == 1:
    return x
  b = x.shape[0]
  if b % m:
    raise ValueError(f"batch {b} is not divisible by pack {m}")
  y = x.reshape(b // m, m, *x.shape[1:])
  y = jnp.moveaxis(y, 1, -2)  # (B/m, ..., m, C)
  return y.reshape(b // m, *x.shape[1:-1], m * x.shape[-1])


def noise_std(std: float, anneal_steps: int, step: jax.Array) -> jax.Array:
  """std, or std * max(0, 1 - step / anneal_steps) when anneal_steps > 0."""
  if anneal_steps <= 0:
    return jnp.asarray(std, jnp.float32)
  frac = jnp.asarray(step, jnp.float32) / anneal_steps
  return std * jnp.maximum(0.0, 1.0 - frac)


def instance_noise(x: jax.Array, key: jax.Array, std: jax.Array) -> jax.Array:
  """x + std * N(0, I), drawn per element."""
  return x + std * jax.random.normal(key, x.shape, x.dtype)
