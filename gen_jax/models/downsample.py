"""The discriminator's 2x downsampling convolution (4x4, stride 2, padding 1).

`conv_2x_down` is `lax.conv_general_dilated` with its gradient wrt the input
computed as a stride-2 transposed convolution in sub-pixel form
(`upsample.sub_pixel_2x`): four stride-1 convolutions. The function and its
parameters are those of `nn.Conv(features, (4, 4), strides=2, padding=1)`;
only the backward pass differs. On XLA CPU, the default input gradient (an
input-dilated convolution) and especially its own derivative, which the
gradient penalties need, are slow (see BENCHMARKS.md: a WGAN-GP critic layer's
penalty gradient 4-20x faster).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen_jax.models.upsample import sub_pixel_2x

DOWNSAMPLE_IMPLS = ("conv", "sub_pixel_grad")
_DIMS = ("NHWC", "HWIO", "NHWC")


def _conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
  return jax.lax.conv_general_dilated(x, kernel, (2, 2), ((1, 1), (1, 1)),
                                      dimension_numbers=_DIMS)


def conv_2x_down(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """(N, H, W, Cin) -> (N, H/2, W/2, Cout) with a (4, 4, Cin, Cout) kernel.

  Odd H or W fall back to the plain convolution: the sub-pixel adjoint only
  produces even sizes.
  """
  if x.shape[1] % 2 or x.shape[2] % 2:
    return _conv(x, kernel)
  return _conv_even(x, kernel)


@jax.custom_vjp
def _conv_even(x: jax.Array, kernel: jax.Array) -> jax.Array:
  return _conv(x, kernel)


def _forward(x, kernel):
  return _conv(x, kernel), (x, kernel)


def _backward(residuals, dy):
  x, kernel = residuals
  # The adjoint of this convolution is PyTorch's ConvTranspose2d(4, 2, 1) with
  # the same weight, i.e. conv_transpose_2x with the kernel flipped and its
  # in/out axes swapped. Both stay differentiable (penalties differentiate
  # this backward pass again).
  dx = sub_pixel_2x(dy, jnp.swapaxes(kernel[::-1, ::-1], 2, 3))
  return dx, _kernel_grad(x, dy)


def _kernel_grad(x: jax.Array, dy: jax.Array) -> jax.Array:
  """dk[r, s, c, o] = sum_{n,i,j} x_padded[n, 2i + r, 2j + s, c] dy[n, i, j, o].

  A stride-1 convolution of x (channels as batch, examples as features) with
  dy dilated by 2, written with explicit transposes in XLA's canonical
  NHWC/HWIO form: XLA's own kernel gradient has other dimension labels, which
  XLA CPU runs ~100x slower inside while loops (jax-ml/jax#12868).
  """
  out = jax.lax.conv_general_dilated(
      jnp.transpose(x, (3, 1, 2, 0)), jnp.transpose(dy, (1, 2, 0, 3)),
      (1, 1), ((1, 1), (1, 1)), rhs_dilation=(2, 2), dimension_numbers=_DIMS)
  return jnp.transpose(out, (1, 2, 0, 3))


_conv_even.defvjp(_forward, _backward)


class DownConv2x(nn.Module):
  """4x4 stride-2 convolution, `kernel` (4, 4, in, out) [+ `bias`], like
  nn.Conv's parameters; `impl` picks how its gradient is computed."""
  features: int
  impl: str = "sub_pixel_grad"
  use_bias: bool = False
  kernel_init: nn.initializers.Initializer = nn.initializers.normal(0.02)
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param("kernel", self.kernel_init,
                        (4, 4, x.shape[-1], self.features), jnp.float32)
    x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
    if self.impl == "sub_pixel_grad":
      y = conv_2x_down(x, kernel)
    elif self.impl == "conv":
      y = _conv(x, kernel)
    else:
      raise ValueError(f"downsample impl {self.impl!r} is not one of "
                       f"{DOWNSAMPLE_IMPLS}")
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,),
                         jnp.float32).astype(y.dtype)
    return y
