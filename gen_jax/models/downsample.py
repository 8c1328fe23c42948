"""The discriminator's 2x downsampling convolution (4x4, stride 2, padding 1).

`DownConv2x` has the function and parameters of `nn.Conv(features, (4, 4),
strides=2, padding=1)`; with impl `sub_pixel_grad` (the default) its gradient
wrt the input is a sub-pixel transposed convolution (conv2x.conv_2x_down).
On XLA CPU, the default input gradient (an input-dilated convolution) and
especially its own derivative, which the gradient penalties need, are slow
(see BENCHMARKS.md: a WGAN-GP critic layer's penalty gradient 4-20x faster).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen_jax.models.conv2x import conv_2x_down, strided_conv

DOWNSAMPLE_IMPLS = ("conv", "sub_pixel_grad")


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
      y = strided_conv(x, kernel)
    else:
      raise ValueError(f"downsample impl {self.impl!r} is not one of "
                       f"{DOWNSAMPLE_IMPLS}")
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,),
                         jnp.float32).astype(y.dtype)
    return y
