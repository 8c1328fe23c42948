"""The generator's 2x upsampling layer, with interchangeable implementations.

Every implementation computes the same function from the same parameters as a
4x4, stride-2 transposed convolution with PyTorch's padding 1 (H -> 2H):
`kernel` (4, 4, in, out) and `bias` (out,), so checkpoints and configs do not
depend on which one ran. `resize_conv` is the exception: nearest-neighbour
resize then a 3x3 convolution, a different function with a (3, 3, in, out)
kernel, which avoids checkerboard artefacts. `sub_pixel` is the fast one on
CPU (gen_jax/models/conv2x.py, BENCHMARKS.md).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen_jax.models.conv2x import sub_pixel_2x  # noqa: F401 (re-exported)

UPSAMPLE_IMPLS = ("conv_transpose", "resize_conv", "sub_pixel")
_DIMS = ("NHWC", "HWIO", "NHWC")


def conv_transpose_2x(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """(N, H, W, Cin) -> (N, 2H, 2W, Cout) with a (4, 4, Cin, Cout) kernel."""
  return jax.lax.conv_transpose(
      x, kernel, strides=(2, 2), padding=((2, 2), (2, 2)),
      dimension_numbers=_DIMS)


class UpConv2x(nn.Module):
  """2x upsampling convolution; `impl` picks how it is computed."""
  features: int
  impl: str = "conv_transpose"
  use_bias: bool = True
  kernel_init: nn.initializers.Initializer = nn.initializers.normal(0.02)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    size = 3 if self.impl == "resize_conv" else 4
    kernel = self.param("kernel", self.kernel_init,
                        (size, size, x.shape[-1], self.features), jnp.float32)
    kernel = kernel.astype(x.dtype)
    if self.impl == "conv_transpose":
      y = conv_transpose_2x(x, kernel)
    elif self.impl == "sub_pixel":
      y = sub_pixel_2x(x, kernel)
    elif self.impl == "resize_conv":
      n, h, w, c = x.shape
      y = jax.image.resize(x, (n, 2 * h, 2 * w, c), "nearest")
      y = jax.lax.conv_general_dilated(
          y, kernel, (1, 1), "SAME",
          dimension_numbers=_DIMS)
    else:
      raise ValueError(f"upsample impl {self.impl!r} is not one of "
                       f"{UPSAMPLE_IMPLS}")
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,),
                         jnp.float32).astype(y.dtype)
    return y
