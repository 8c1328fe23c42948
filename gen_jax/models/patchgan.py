"""PatchGAN discriminator (Isola et al. 2017, pix2pix; also CycleGAN's).

The pix2pix `NLayerDiscriminator`: a 4x4 stride-2 convolution of width
`width` and LeakyReLU 0.2 (no normalisation), then `n_layers - 1` 4x4
stride-2 convolutions of width `width * min(2^k, 8)`, one 4x4 stride-1
convolution of width `width * min(2^n_layers, 8)`, each followed by the
normalisation `norm` and LeakyReLU 0.2, and a 4x4 stride-1 convolution to one
logit per patch. Every convolution pads by 1. n_layers=3 is the paper's
"70x70 PatchGAN" (each logit sees a 70x70 receptive field) for 256 px
images; smaller images need fewer layers (`output_size`): 16 px takes
n_layers <= 2 and 32 px n_layers <= 3.

`norm`: 'instance' (per-example, per-channel, without scale and shift, as
pix2pix's InstanceNorm2d default), 'batch' or 'none'. Convolutions followed
by a norm have no bias. Weights ~ N(0, 0.02).

Conditional (pix2pix's D on (input, output) pairs): `cond` (B, H, W, c), an
image of the same height and width as `x`, is concatenated to `x` on the
channel axis. Returns patch logits (B, h, w, 1); the GAN losses average
them.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen_jax.models.layers import BN_MOMENTUM

NORMS = ("instance", "batch", "none")
_INIT = nn.initializers.normal(0.02)


def output_size(size: int, n_layers: int) -> int:
  """Height of the logit map for a `size` px input: n_layers stride-2
  convolutions (k=4, pad 1: floor(s/2)), then two stride-1 ones (s - 1
  each)."""
  for _ in range(n_layers):
    size //= 2
  return size - 2


def receptive_field(n_layers: int) -> int:
  """Pixels each logit sees: 70 for n_layers=3, 34 for 2, 16 for 1."""
  r = 4  # the last (stride-1) convolution
  r = (r - 1) * 1 + 4  # the stride-1 convolution before it
  for _ in range(n_layers):
    r = (r - 1) * 2 + 4
  return r


def norm_layer(norm: str, train: bool):
  """The normalisation applied after a convolution: instance, batch, none."""
  if norm == "instance":
    return nn.InstanceNorm(epsilon=1e-5, use_scale=False, use_bias=False)
  if norm == "batch":
    return nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM,
                        epsilon=1e-5)
  if norm == "none":
    return lambda x: x
  raise ValueError(f"norm {norm!r} is not one of {NORMS}")


class PatchGAN(nn.Module):
  """x (B, H, W, C) [, cond (B, H, W, c)] -> patch logits (B, h, w, 1)."""
  width: int = 64
  n_layers: int = 3
  norm: str = "instance"

  @nn.compact
  def __call__(self, x: jax.Array, cond: jax.Array | None = None,
               train: bool = True) -> jax.Array:
    if cond is not None:
      if cond.shape[:3] != x.shape[:3]:
        raise ValueError(f"PatchGAN: cond {cond.shape} and x {x.shape} must "
                         "agree in batch, height and width")
      x = jnp.concatenate([x, cond.astype(x.dtype)], axis=-1)
    if output_size(min(x.shape[1:3]), self.n_layers) < 1:
      raise ValueError(f"PatchGAN with n_layers={self.n_layers} needs images "
                       f"of at least {2 ** self.n_layers * 3} px; got "
                       f"{x.shape[1]}x{x.shape[2]}")
    pad = ((1, 1), (1, 1))
    # A bias before a norm is cancelled by it (and, its gradient being 0 up
    # to rounding, Adam turns the rounding into parameter noise).
    use_bias = self.norm == "none"
    conv = lambda w, s, bias=use_bias: nn.Conv(
        w, (4, 4), (s, s), padding=pad, use_bias=bias, kernel_init=_INIT)
    h = nn.leaky_relu(conv(self.width, 2, True)(x), 0.2)
    for k in range(1, self.n_layers):
      h = conv(self.width * min(2 ** k, 8), 2)(h)
      h = nn.leaky_relu(norm_layer(self.norm, train)(h), 0.2)
    h = conv(self.width * min(2 ** self.n_layers, 8), 1)(h)
    h = nn.leaky_relu(norm_layer(self.norm, train)(h), 0.2)
    return conv(1, 1, True)(h).astype(jnp.float32)
