"""U-Net generator of pix2pix (Isola et al. 2017, section 3.2.1 and
appendix 6.1.1).

Encoder: `depth` 4x4 stride-2 convolutions (pad 1), widths `width *
min(2^i, 8)`, each after LeakyReLU 0.2 except the first, normalised except
the first and the innermost. Decoder: mirrored 4x4 stride-2 transposed
convolutions (ReLU before, `UpConv2x`), normalised, each concatenated with
the encoder's map of the same size (the skip connections); the last maps to
`channels` with tanh. Dropout 0.5 after the decoder's `num_dropout`
innermost normalised layers is the generator's only noise (the paper keeps it
at test time). `depth` = log2 of the image size takes a 16 px image to a
1x1 bottleneck, as the paper's 8 layers do for 256 px.

`norm`: 'instance' (no scale and shift, as pix2pix's default) or 'batch'.
Called as `unet.apply(variables, source (B, H, W, c), train=...,
rngs={'dropout': key})` -> (B, H, W, channels) in [-1, 1].
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen_jax.models.patchgan import norm_layer
from gen_jax.models.upsample import UpConv2x

NORMS = ("instance", "batch")
_INIT = nn.initializers.normal(0.02)


def depth_for(size: int) -> int:
  """Encoder layers that take a `size` px image (a power of 2) to 1x1."""
  d = size.bit_length() - 1
  if size != 2 ** d or d < 2:
    raise ValueError(f"U-Net: image size {size} must be a power of 2 >= 4")
  return d


class UNet(nn.Module):
  channels: int
  width: int = 64
  depth: int = 4
  norm: str = "instance"
  dropout: float = 0.5
  num_dropout: int = 3
  upsample: str = "sub_pixel"

  @nn.compact
  def __call__(self, x: jax.Array, cond: jax.Array | None = None,
               train: bool = True, dropout: bool | None = None) -> jax.Array:
    """`dropout`: None follows `train`; True keeps it on in eval mode."""
    del cond  # the source image is `x`
    if x.shape[1] % 2 ** self.depth or x.shape[2] % 2 ** self.depth:
      raise ValueError(f"U-Net of depth {self.depth}: image {x.shape[1:3]} "
                       f"must be divisible by {2 ** self.depth}")
    drop = train if dropout is None else dropout
    n = self.depth
    use_bias = self.norm != "batch"
    w = lambda i: self.width * min(2 ** i, 8)
    skips = []
    h = x
    for i in range(n):
      if i > 0:
        h = nn.leaky_relu(h, 0.2)
      h = nn.Conv(w(i), (4, 4), (2, 2), padding=((1, 1), (1, 1)),
                  use_bias=use_bias or i in (0, n - 1), kernel_init=_INIT,
                  name=f"down{i}")(h)
      if 0 < i < n - 1:
        h = norm_layer(self.norm, train)(h)
      skips.append(h)
    for i in reversed(range(n)):
      h = nn.relu(h)
      out = self.channels if i == 0 else w(i - 1)
      h = UpConv2x(out, self.upsample, use_bias=use_bias or i == 0,
                   name=f"up{i}")(h)
      if i == 0:
        break
      h = norm_layer(self.norm, train)(h)
      if self.dropout > 0 and n - 1 - self.num_dropout <= i < n - 1:
        h = nn.Dropout(self.dropout, deterministic=not drop)(h)
      h = jnp.concatenate([h, skips[i - 1]], axis=-1)
    return jnp.tanh(h.astype(jnp.float32))
