"""MLP generator and discriminator for low-dimensional (2D) data."""

from collections.abc import Sequence

import flax.linen as nn
import jax

from gen_jax.models.layers import BN_MOMENTUM, MinibatchStd, normalized


def kernel_init(init_std: float):
  """Flax's default (LeCun normal) for 0, else N(0, init_std^2) weights
  (PacGAN's 2D networks: 0.02)."""
  if init_std > 0:
    return nn.initializers.normal(init_std)
  return nn.linear.default_kernel_init


class Generator(nn.Module):
  """z (B, noise_dim) -> points (B, out_dim); ReLU hidden layers, optionally
  batch-normalised (PacGAN's 2D generator: 4 x 400 with batch norm)."""
  out_dim: int = 2
  hidden: Sequence[int] = (400, 400, 400, 400)
  batch_norm: bool = True
  init_std: float = 0.0

  @nn.compact
  def __call__(self, z: jax.Array, cond: None = None,
               train: bool = True) -> jax.Array:
    if cond is not None:
      raise ValueError("the MLP generator is unconditional")
    init = kernel_init(self.init_std)
    x = z
    for width in self.hidden:
      # No bias before batch norm: its gradient is exactly zero, and Adam
      # would turn the rounding noise in it into steps of size lr.
      x = nn.Dense(width, use_bias=not self.batch_norm, kernel_init=init)(x)
      if self.batch_norm:
        x = nn.BatchNorm(use_running_average=not train,
                         momentum=BN_MOMENTUM)(x)
      x = nn.relu(x)
    return nn.Dense(self.out_dim, kernel_init=init)(x)


def maxout(x: jax.Array, pieces: int) -> jax.Array:
  """(B, pieces * units) -> (B, units): the max over each unit's pieces
  (Goodfellow et al. 2013). Piece p of unit u is feature p * units + u: the
  max is then over `pieces` contiguous slices, which vectorises (adjacent
  pieces made the step 2x slower with seeds vmapped on CPU)."""
  return x.reshape(*x.shape[:-1], pieces, -1).max(axis=-2)


class Discriminator(nn.Module):
  """points (B, D) -> logits (B,); LeakyReLU(0.2) hidden layers, or maxout
  layers of `maxout_pieces` pieces (PacGAN's 2D critic: 3 x 200 units of 5).

  `minibatch_std` (None: off) appends the minibatch standard deviation, over
  groups of that size (0: the whole batch), to the last hidden features.
  """
  hidden: Sequence[int] = (200, 200, 200)
  norm: str = "none"
  minibatch_std: int | None = None
  maxout_pieces: int = 0
  init_std: float = 0.0

  @nn.compact
  def __call__(self, x: jax.Array, cond: None = None,
               train: bool = True) -> jax.Array:
    if cond is not None:
      raise ValueError("the MLP discriminator is unconditional")
    init = kernel_init(self.init_std)
    pieces = max(self.maxout_pieces, 1)
    for width in self.hidden:
      dense = nn.Dense(width * pieces, use_bias=self.norm != "batch",
                       kernel_init=init)  # as above
      x = normalized(dense, x, self.norm, train)
      x = maxout(x, pieces) if self.maxout_pieces else nn.leaky_relu(x, 0.2)
    if self.minibatch_std is not None:
      x = MinibatchStd(self.minibatch_std)(x)
    out = normalized(nn.Dense(1, kernel_init=init), x, self.norm, train,
                     normalize_output=False)
    return out[:, 0]
