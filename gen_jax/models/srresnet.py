"""SRGAN's networks (Ledig et al. 2017, figure 4).

`SRResNet` (the generator): a 9x9 convolution and PReLU, `num_blocks`
residual blocks (3x3 conv, batch norm, PReLU, 3x3 conv, batch norm, plus the
block's input), a 3x3 conv and batch norm added to the first features, then
log2(scale) sub-pixel upsamplings (3x3 conv to 4 * width channels, pixel
shuffle x2 (Shi et al. 2016), PReLU) and a 9x9 conv to the image, with tanh
(images in [-1, 1]). Input: the low-resolution image (B, h, w, c) -> (B,
scale*h, scale*w, channels).

`SRDiscriminator`: a 3x3 conv and LeakyReLU 0.2, then 3x3 convs with batch
norm and LeakyReLU whose widths double every two layers (from `width`) and
whose strides alternate 2, 1 (`num_layers` in all, the paper's 7), a dense
layer of `dense` units with LeakyReLU and one logit (B,).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen_jax.models.layers import BN_MOMENTUM

SCALES = (2, 4)


def pixel_shuffle(x: jax.Array, r: int) -> jax.Array:
  """(B, H, W, C r^2) -> (B, rH, rW, C): channel c*r^2 + i*r + j goes to
  sub-pixel (i, j) of channel c (PyTorch's nn.PixelShuffle order)."""
  b, h, w, c = x.shape
  x = x.reshape(b, h, w, c // (r * r), r, r)
  x = x.transpose(0, 1, 4, 2, 5, 3)
  return x.reshape(b, h * r, w * r, c // (r * r))


class PReLU(nn.Module):
  """max(0, x) + a min(0, x) with one learned slope per channel (init 0.25,
  as PyTorch's)."""

  @nn.compact
  def __call__(self, x):
    a = self.param("alpha", nn.initializers.constant(0.25), (x.shape[-1],))
    return jnp.where(x >= 0, x, a * x)


class SRResNet(nn.Module):
  channels: int
  scale: int = 4
  width: int = 64
  num_blocks: int = 16

  @nn.compact
  def __call__(self, x: jax.Array, cond: jax.Array | None = None,
               train: bool = True) -> jax.Array:
    del cond
    if self.scale not in SCALES:
      raise ValueError(f"SRResNet scale {self.scale} is not one of {SCALES}")
    bn = lambda: nn.BatchNorm(use_running_average=not train,
                              momentum=BN_MOMENTUM)
    h = first = PReLU()(nn.Conv(self.width, (9, 9))(x))
    for _ in range(self.num_blocks):
      r = PReLU()(bn()(nn.Conv(self.width, (3, 3), use_bias=False)(h)))
      h = h + bn()(nn.Conv(self.width, (3, 3), use_bias=False)(r))
    h = first + bn()(nn.Conv(self.width, (3, 3), use_bias=False)(h))
    for _ in range(self.scale.bit_length() - 1):
      h = PReLU()(pixel_shuffle(nn.Conv(4 * self.width, (3, 3))(h), 2))
    return jnp.tanh(nn.Conv(self.channels, (9, 9))(h).astype(jnp.float32))


class SRDiscriminator(nn.Module):
  width: int = 64
  num_layers: int = 7
  dense: int = 1024

  @nn.compact
  def __call__(self, x: jax.Array, cond: jax.Array | None = None,
               train: bool = True) -> jax.Array:
    del cond
    h = nn.leaky_relu(nn.Conv(self.width, (3, 3))(x), 0.2)
    for i in range(self.num_layers):
      stride = 2 if i % 2 == 0 else 1
      w = self.width * 2 ** ((i + 1) // 2)
      h = nn.Conv(w, (3, 3), (stride, stride), use_bias=False)(h)
      h = nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM)(h)
      h = nn.leaky_relu(h, 0.2)
    h = nn.leaky_relu(nn.Dense(self.dense)(h.reshape(h.shape[0], -1)), 0.2)
    return nn.Dense(1)(h)[:, 0].astype(jnp.float32)
