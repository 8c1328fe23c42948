"""MLP generator and discriminator for low-dimensional (2D) data."""

from collections.abc import Sequence

import flax.linen as nn
import jax

from gen_jax.models.layers import BN_MOMENTUM, MinibatchStd, normalized


class Generator(nn.Module):
  """z (B, noise_dim) -> points (B, out_dim); ReLU hidden layers, optionally
  batch-normalised (PacGAN's 2D generator: 4 x 400 with batch norm)."""
  out_dim: int = 2
  hidden: Sequence[int] = (400, 400, 400, 400)
  batch_norm: bool = True

  @nn.compact
  def __call__(self, z: jax.Array, train: bool = True) -> jax.Array:
    x = z
    for width in self.hidden:
      # No bias before batch norm: its gradient is exactly zero, and Adam
      # would turn the rounding noise in it into steps of size lr.
      x = nn.Dense(width, use_bias=not self.batch_norm)(x)
      if self.batch_norm:
        x = nn.BatchNorm(use_running_average=not train,
                         momentum=BN_MOMENTUM)(x)
      x = nn.relu(x)
    return nn.Dense(self.out_dim)(x)


class Discriminator(nn.Module):
  """points (B, D) -> logits (B,); LeakyReLU hidden layers.

  `minibatch_std` (None: off) appends the minibatch standard deviation, over
  groups of that size (0: the whole batch), to the last hidden features.
  """
  hidden: Sequence[int] = (200, 200, 200)
  norm: str = "none"
  minibatch_std: int | None = None

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
    for width in self.hidden:
      dense = nn.Dense(width, use_bias=self.norm != "batch")  # as above
      x = nn.leaky_relu(normalized(dense, x, self.norm, train), 0.2)
    if self.minibatch_std is not None:
      x = MinibatchStd(self.minibatch_std)(x)
    out = normalized(nn.Dense(1), x, self.norm, train, normalize_output=False)
    return out[:, 0]
