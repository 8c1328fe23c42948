"""DCGAN generator and discriminator for 16, 28, 32 and 64 px images.

Radford et al. 2016, as in the PyTorch DCGAN example: the generator projects
z to a 4x4 (7x7 for 28 px) map with width `g_width * 2^(n-1)` and doubles the
resolution n times, halving the width, with batch norm and ReLU, ending in
tanh; the discriminator mirrors it with 4x4 stride-2 convolutions, LeakyReLU
0.2 and normalisation after all but the first layer. Weights ~ N(0, 0.02).

Class-conditional (`num_classes` > 0, labels passed as `cond`): the
generator's batch norms become class-conditional (per-class scale and shift);
the discriminator adds a projection term <embed(y), phi(x)> to its logit
(Miyato & Koyama 2018) when `projection`, and with `aux_classes` > 0 returns
(logits, class logits) from an auxiliary classifier head on phi(x) (AC-GAN,
Odena et al. 2017). phi(x) is the flattened last feature map.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen_jax.models.downsample import DownConv2x
from gen_jax.models.layers import (BN_MOMENTUM, ConditionalBatchNorm,
                                   MinibatchStd, normalized)
from gen_jax.models.upsample import UpConv2x

RESOLUTIONS = (16, 28, 32, 64)
_INIT = nn.initializers.normal(0.02)


def num_doublings(resolution: int) -> tuple[int, int]:
  """(base size, number of 2x steps) with base * 2^n = resolution."""
  if resolution not in RESOLUTIONS:
    raise ValueError(f"DCGAN resolution {resolution} is not one of "
                     f"{RESOLUTIONS}")
  base = 7 if resolution == 28 else 4
  return base, int(round(math.log2(resolution // base)))


class Generator(nn.Module):
  """z (B, noise_dim), labels cond (B,) or None -> images (B, resolution,
  resolution, channels) in [-1, 1] (tanh), or raw values if
  `output_activation` is 'none'."""
  resolution: int
  channels: int
  width: int = 64
  upsample: str = "sub_pixel"
  output_activation: str = "tanh"
  num_classes: int = 0
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, z: jax.Array, cond: jax.Array | None = None,
               train: bool = True) -> jax.Array:
    base, n = num_doublings(self.resolution)
    if self.num_classes and cond is None:
      raise ValueError("a conditional generator needs labels (cond)")
    counter = iter(range(n))

    def bn(x):
      if self.num_classes:
        return ConditionalBatchNorm(self.num_classes, dtype=self.dtype,
                                    name=f"CondBatchNorm_{next(counter)}")(
                                        x, cond, train)
      return nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM,
                          dtype=self.dtype)(x)

    width = self.width * 2 ** (n - 1)
    # A 4x4 transposed convolution of a 1x1 input is a dense layer.
    x = nn.Dense(base * base * width, use_bias=False, kernel_init=_INIT,
                 dtype=self.dtype)(z)
    x = nn.relu(bn(x.reshape(z.shape[0], base, base, width)))
    for i in range(n - 1):
      width //= 2
      x = UpConv2x(width, self.upsample, use_bias=False,
                   name=f"up{i}")(x.astype(self.dtype))
      x = nn.relu(bn(x))
    x = UpConv2x(self.channels, self.upsample, name=f"up{n - 1}")(x)
    x = x.astype(jnp.float32)
    return jnp.tanh(x) if self.output_activation == "tanh" else x


class Discriminator(nn.Module):
  """images (B, H, W, C), labels cond (B,) or None -> logits (B,), or
  (logits, class logits (B, aux_classes)) with an auxiliary classifier.

  `minibatch_std` (None: off) appends the minibatch standard deviation, over
  groups of that size (0: the whole batch), as one more channel of the last
  feature map, before the final dense layer (ProGAN's place for it).
  """
  width: int = 64
  norm: str = "batch"
  downsample: str = "sub_pixel_grad"  # downsample.DOWNSAMPLE_IMPLS
  minibatch_std: int | None = None
  num_classes: int = 0       # > 0 with projection: a projection critic
  projection: bool = False
  aux_classes: int = 0       # > 0: AC-GAN's auxiliary classifier head
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, cond: jax.Array | None = None,
               train: bool = True):
    _, n = num_doublings(x.shape[1])
    width = self.width
    x = x.astype(self.dtype)
    for i in range(n):
      # nn.Conv(width, (4, 4), 2, padding 1)'s function and parameters, with
      # a gradient that XLA CPU computes faster (models/downsample.py).
      conv = DownConv2x(width, self.downsample, kernel_init=_INIT,
                        dtype=self.dtype, name=f"Conv_{i}")
      x = nn.leaky_relu(normalized(conv, x, self.norm, train,
                                   normalize_output=i > 0), 0.2)
      width *= 2
    if self.minibatch_std is not None:
      x = MinibatchStd(self.minibatch_std)(x)
    phi = x.reshape(x.shape[0], -1)
    out = nn.Dense(1, kernel_init=_INIT, dtype=self.dtype)
    logits = normalized(out, phi, self.norm, train,
                        normalize_output=False)[:, 0].astype(jnp.float32)
    if self.projection:
      if cond is None:
        raise ValueError("a projection discriminator needs labels (cond)")
      embed = nn.Embed(self.num_classes, phi.shape[-1], embedding_init=_INIT,
                       name="projection")(cond)
      logits = logits + jnp.sum(embed.astype(jnp.float32)
                                * phi.astype(jnp.float32), axis=-1)
    if self.aux_classes:
      head = nn.Dense(self.aux_classes, kernel_init=_INIT, dtype=self.dtype,
                      name="aux_classifier")
      return logits, head(phi).astype(jnp.float32)
    return logits
