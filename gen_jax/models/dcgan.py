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

from gen_jax.models import progressive
from gen_jax.models.downsample import DownConv2x
from gen_jax.models.layers import (BN_MOMENTUM, ConditionalBatchNorm,
                                   MinibatchStd, normalized)
from gen_jax.models.upsample import UpConv2x

RESOLUTIONS = (16, 28, 32, 64)
_INIT = nn.initializers.normal(0.02)


def levels(resolution: int) -> tuple[int, ...]:
  """Resolutions of the progressive levels: base, 2 base, ..., resolution."""
  base, n = num_doublings(resolution)
  return tuple(base * 2 ** k for k in range(n + 1))


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
  `output_activation` is 'none'.

  `progressive` (models/progressive.py): level k (`levels(resolution)[k]`
  px) ends in a 1x1 toRGB convolution `to_rgb{k}` of that level's features;
  the top level's is the last up-convolution itself (so a non-progressive
  generator's parameters are a subset). `level`/`alpha` pick the level and
  the fade; tanh comes after the mix.
  """
  resolution: int
  channels: int
  width: int = 64
  upsample: str = "sub_pixel"
  output_activation: str = "tanh"
  num_classes: int = 0
  progressive: bool = False
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, z: jax.Array, cond: jax.Array | None = None,
               train: bool = True, level: int | None = None,
               alpha: jax.Array | None = None) -> jax.Array:
    base, n = num_doublings(self.resolution)
    if self.num_classes and cond is None:
      raise ValueError("a conditional generator needs labels (cond)")
    top = n if level is None else level
    if (level is not None or alpha is not None) and not self.progressive:
      raise ValueError("level/alpha need a progressive generator")
    counter = iter(range(n))

    def bn(x):
      if self.num_classes:
        return ConditionalBatchNorm(self.num_classes, dtype=self.dtype,
                                    name=f"CondBatchNorm_{next(counter)}")(
                                        x, cond, train)
      return nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM,
                          dtype=self.dtype)(x)

    def to_rgb(k, h):
      return nn.Conv(self.channels, (1, 1), kernel_init=_INIT,
                     dtype=self.dtype, name=f"to_rgb{k}")(h).astype(
                         jnp.float32)

    width = self.width * 2 ** (n - 1)
    # A 4x4 transposed convolution of a 1x1 input is a dense layer.
    x = nn.Dense(base * base * width, use_bias=False, kernel_init=_INIT,
                 dtype=self.dtype)(z)
    x = nn.relu(bn(x.reshape(z.shape[0], base, base, width)))
    features, old = [x], None
    for k in range(1, top + 1):  # up{k-1}: level k-1 -> level k
      if k == top and alpha is not None:
        old = progressive.upsample(to_rgb(k - 1, x))
      if k < n:
        width //= 2
        x = UpConv2x(width, self.upsample, use_bias=False,
                     name=f"up{k - 1}")(x.astype(self.dtype))
        x = nn.relu(bn(x))
        features.append(x)
      else:
        x = UpConv2x(self.channels, self.upsample, name=f"up{n - 1}")(x)
    if self.progressive and self.is_initializing():
      for k, h in enumerate(features[:top]):  # every level's head exists
        to_rgb(k, h)
    x = to_rgb(top, x) if top < n else x.astype(jnp.float32)
    if old is not None:
      x = progressive.lerp(old, x, alpha)
    return jnp.tanh(x) if self.output_activation == "tanh" else x


class Discriminator(nn.Module):
  """images (B, H, W, C), labels cond (B,) or None -> logits (B,), or
  (logits, class logits (B, aux_classes)) with an auxiliary classifier.

  `minibatch_std` (None: off) appends the minibatch standard deviation, over
  groups of that size (0: the whole batch), as one more channel of the last
  feature map, before the final dense layer (ProGAN's place for it).
  `per_example`: batch statistics held fixed, for the gradient penalties
  (models/layers.py).

  `progressive`: level k < n takes images at `levels(resolution)[k]` px
  through a 1x1 fromRGB convolution `from_rgb{k}` (LeakyReLU 0.2) into the
  layer that reads that resolution; the top level's fromRGB is Conv_0
  itself. During a fade, the new layer's output is mixed with the lower
  level's fromRGB of the average-pooled input.
  """
  width: int = 64
  norm: str = "batch"
  downsample: str = "sub_pixel_grad"  # downsample.DOWNSAMPLE_IMPLS
  minibatch_std: int | None = None
  num_classes: int = 0       # > 0 with projection: a projection critic
  projection: bool = False
  aux_classes: int = 0       # > 0: AC-GAN's auxiliary classifier head
  progressive: bool = False  # per-level fromRGB heads (models/progressive.py)
  resolution: int = 0        # the top level's (progressive); 0: x's
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, cond: jax.Array | None = None,
               train: bool = True, per_example: bool = False,
               level: int | None = None, alpha: jax.Array | None = None):
    if (level is not None or alpha is not None) and not self.progressive:
      raise ValueError("level/alpha need a progressive discriminator")
    _, n = num_doublings(self.resolution or x.shape[1])
    top = n if level is None else level

    # A progressive critic skips its first layers at lower levels, so its
    # normalisation modules are named (not numbered by call order).
    named = lambda name: name if self.progressive else None

    def conv(i, h):
      # nn.Conv(width, (4, 4), 2, padding 1)'s function and parameters, with
      # a gradient that XLA CPU computes faster (models/downsample.py).
      layer = DownConv2x(self.width * 2 ** i, self.downsample,
                         kernel_init=_INIT, dtype=self.dtype, name=f"Conv_{i}")
      return nn.leaky_relu(normalized(layer, h, self.norm, train,
                                      normalize_output=i > 0,
                                      per_example=per_example,
                                      name=named(f"norm_{i}")), 0.2)

    def from_rgb(k, img):
      # Level k < n enters before Conv_{n-k}, whose input width it makes.
      layer = nn.Conv(self.width * 2 ** (n - k - 1), (1, 1),
                      kernel_init=_INIT, dtype=self.dtype,
                      name=f"from_rgb{k}")
      return nn.leaky_relu(normalized(layer, img, self.norm, train,
                                      normalize_output=False,
                                      per_example=per_example,
                                      name=named(f"from_rgb_norm{k}")), 0.2)

    img = x.astype(self.dtype)
    x = img if top == n else from_rgb(top, img)
    for i in range(n - top, n):  # Conv_i: level n-i -> level n-i-1
      x = conv(i, x)
      if i == n - top and alpha is not None:
        x = progressive.lerp(from_rgb(top - 1, progressive.downsample(img)),
                             x, alpha)
    if self.progressive and self.is_initializing():
      for k in range(top):  # every level's head exists
        from_rgb(k, progressive.resize(img, img.shape[1] // 2 ** (top - k)))
    if self.minibatch_std is not None:
      x = MinibatchStd(self.minibatch_std)(x, per_example)
    phi = x.reshape(x.shape[0], -1)
    out = nn.Dense(1, kernel_init=_INIT, dtype=self.dtype)
    logits = normalized(out, phi, self.norm, train, normalize_output=False,
                        name=named("out_norm"))[:, 0].astype(jnp.float32)
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
