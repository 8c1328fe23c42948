"""The ResNet image-to-image generator of CycleGAN (Zhu et al. 2017, appendix
7.2), after Johnson et al. 2016's style-transfer network.

In the paper's notation, with k = `width` (ngf, 64 in the paper):

  c7s1-k, d2k, d4k, R4k x n_blocks, u2k, uk, c7s1-C

c7s1-k: reflection pad 3, 7x7 convolution (stride 1) to k channels, instance
norm, ReLU; dK: 3x3 stride-2 convolution (padding 1) to K channels, instance
norm, ReLU (`n_down` of them, 2 in the paper); RK: a residual block of two
reflection-padded 3x3 convolutions with instance norm (ReLU between them);
uK: 3x3 stride-2 transposed convolution (PyTorch's padding 1, output
padding 1) to K channels, instance norm, ReLU; the last c7s1-C ends in tanh
without norm. Instance norm without a learned scale or offset, and weights
~ N(0, 0.02), as the authors' released code (`networks.py`,
`ResnetGenerator`; `init_type='normal'`). Unlike it, convolutions followed
by instance norm have no bias: the norm subtracts it again, so it changes
nothing but gets a gradient that is 0 up to rounding, which Adam turns into
parameter noise. The paper uses 6 blocks for 128 px
and 9 for 256 px and above.

Called as `module.apply(variables, x, cond=None, train=...)`: x (B, H, W, C)
source images -> (B, H, W, channels) translations in [-1, 1]. H and W must
be divisible by 2^n_down, and the smallest map larger than 1 pixel (the
reflection pad needs it).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

_INIT = nn.initializers.normal(0.02)


def reflect_pad(x: jax.Array, p: int) -> jax.Array:
  """Reflection padding of p pixels on both spatial sides of (B, H, W, C)."""
  return jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode="reflect")


def instance_norm(x: jax.Array) -> jax.Array:
  """Each example's channel normalised over H and W (eps 1e-5, no affine:
  PyTorch's InstanceNorm2d(affine=False) in the released code)."""
  return nn.InstanceNorm(epsilon=1e-5, use_scale=False, use_bias=False)(x)


class ResnetBlock(nn.Module):
  """x + [pad, conv3x3, IN, ReLU, pad, conv3x3, IN](x)."""
  features: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    y = nn.Conv(self.features, (3, 3), padding="VALID", use_bias=False,
                kernel_init=_INIT)(reflect_pad(x, 1))
    y = nn.relu(instance_norm(y))
    y = nn.Conv(self.features, (3, 3), padding="VALID", use_bias=False,
                kernel_init=_INIT)(reflect_pad(y, 1))
    return x + instance_norm(y)


class ResnetTranslator(nn.Module):
  """(B, H, W, C_in) -> (B, H, W, channels) in [-1, 1]; see the module
  docstring for the layers."""
  channels: int
  width: int = 64
  n_down: int = 2
  n_blocks: int = 9

  @nn.compact
  def __call__(self, x: jax.Array, cond: jax.Array | None = None,
               train: bool = True) -> jax.Array:
    del cond, train  # instance norm: the same in training and evaluation
    h, w = x.shape[1:3]
    if h % 2 ** self.n_down or w % 2 ** self.n_down:
      raise ValueError(f"ResnetTranslator: images {h}x{w} are not divisible "
                       f"by 2^n_down = {2 ** self.n_down}")
    y = nn.Conv(self.width, (7, 7), padding="VALID", use_bias=False,
                kernel_init=_INIT)(reflect_pad(x, 3))
    y = nn.relu(instance_norm(y))
    for i in range(self.n_down):
      y = nn.Conv(self.width * 2 ** (i + 1), (3, 3), strides=(2, 2),
                  padding=((1, 1), (1, 1)), use_bias=False,
                  kernel_init=_INIT)(y)
      y = nn.relu(instance_norm(y))
    for _ in range(self.n_blocks):
      y = ResnetBlock(self.width * 2 ** self.n_down)(y)
    for i in reversed(range(self.n_down)):
      # PyTorch's ConvTranspose2d(k=3, s=2, padding=1, output_padding=1):
      # pads (1, 2) of the stride-dilated input; H -> 2H.
      y = nn.ConvTranspose(self.width * 2 ** i, (3, 3), strides=(2, 2),
                           padding=((1, 2), (1, 2)), use_bias=False,
                           kernel_init=_INIT)(y)
      y = nn.relu(instance_norm(y))
    y = nn.Conv(self.channels, (7, 7), padding="VALID",
                kernel_init=_INIT)(reflect_pad(y, 3))
    return jnp.tanh(y)
