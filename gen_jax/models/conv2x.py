"""The two 4x4 stride-2 convolutions of the DCGAN family, with fast gradients.

`conv_2x_down`: (N, H, W, Cin) -> (N, H/2, W/2, Cout), padding 1 (the
critic's nn.Conv). `sub_pixel_2x`: (N, H, W, Cin) -> (N, 2H, 2W, Cout), the
transposed convolution with PyTorch's padding 1 (the generator's
ConvTranspose). Both take a (4, 4, Cin, Cout) kernel and compute exactly the
functions of `lax.conv_general_dilated` / `lax.conv_transpose`; only how XLA
is asked to compute them, and their gradients, differs.

Each is the other's adjoint, so each one's custom VJP is built from the other's
forward pass plus a kernel gradient written as one convolution in XLA's
canonical NHWC/HWIO form. XLA CPU's own formulations are slow here: its
transposed convolution's backward pass (~20x), its input-dilated convolutions
and their derivatives (what gradient penalties differentiate, 4-20x), and any
convolution with non-canonical dimension labels inside a while loop (~100x,
jax-ml/jax#12868). Numbers in BENCHMARKS.md. Being custom VJPs, neither
supports forward-mode differentiation (jax.jvp); reverse mode to any order
works.
"""

import jax
import jax.numpy as jnp

_DIMS = ("NHWC", "HWIO", "NHWC")


def _adjoint_kernel(kernel: jax.Array) -> jax.Array:
  """The kernel of the adjoint map: spatially flipped, in/out swapped."""
  return jnp.swapaxes(kernel[::-1, ::-1], 2, 3)


def strided_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """Plain XLA 4x4 stride-2 convolution with padding 1 (autodiff by XLA)."""
  return jax.lax.conv_general_dilated(x, kernel, (2, 2), ((1, 1), (1, 1)),
                                      dimension_numbers=_DIMS)


def strided_conv_kernel_grad(x: jax.Array, dy: jax.Array) -> jax.Array:
  """dk[r, s, c, o] = sum_{n,i,j} x_padded[n, 2i + r, 2j + s, c] dy[n, i, j, o]:
  the kernel gradient of `strided_conv` (x (N, 2h, 2w, C), dy (N, h, w, O)).

  A stride-1 convolution of x (channels as batch, examples as features) with
  dy dilated by 2, with explicit transposes so that XLA sees canonical
  dimension labels (its own kernel gradient has others).
  """
  out = jax.lax.conv_general_dilated(
      jnp.transpose(x, (3, 1, 2, 0)), jnp.transpose(dy, (1, 2, 0, 3)),
      (1, 1), ((1, 1), (1, 1)), rhs_dilation=(2, 2), dimension_numbers=_DIMS)
  return jnp.transpose(out, (1, 2, 0, 3))


def sub_pixel_phases(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """The transposed convolution as four 2x2 convolutions, one per phase.

  Output pixel (2i + a, 2j + b) only sees the kernel taps k[a::2, b::2] (for
  `lax.conv_transpose`'s unflipped layout) applied to input rows i + a - 1,
  i + a and columns j + b - 1, j + b: a 2x2 convolution padded by
  ((1 - a, a), (1 - b, b)), whose output has the input's size. The phases are
  then interleaved (depth-to-space). (One 2x2 convolution with 4 * Cout
  outputs is the same function, but XLA CPU's backward for it is very slow.)
  """
  n, h, w, _ = x.shape
  rows = []
  for a in (0, 1):
    cols = [jax.lax.conv_general_dilated(
        x, kernel[a::2, b::2], (1, 1), ((1 - a, a), (1 - b, b)),
        dimension_numbers=_DIMS) for b in (0, 1)]
    rows.append(jnp.stack(cols, axis=3))  # (N, H, W, b, Cout)
  y = jnp.stack(rows, axis=2)  # (N, H, a, W, b, Cout)
  return y.reshape(n, 2 * h, 2 * w, kernel.shape[-1])


@jax.custom_vjp
def sub_pixel_2x(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """(N, H, W, Cin) -> (N, 2H, 2W, Cout): `lax.conv_transpose` with strides 2
  and padding 2 (PyTorch's ConvTranspose2d(4, 2, 1) with the kernel flipped)
  as `sub_pixel_phases`; its input gradient is a strided convolution."""
  return sub_pixel_phases(x, kernel)


# The forward rules call the custom-VJP functions themselves (not their plain
# bodies), so that an outer differentiation of a gradient (a gradient penalty)
# uses these rules again instead of XLA's; likewise the backward rules.


def _sub_pixel_forward(x, kernel):
  return sub_pixel_2x(x, kernel), (x, kernel)


def _sub_pixel_backward(residuals, dy):
  x, kernel = residuals
  dx = _conv_2x_down_even(dy, _adjoint_kernel(kernel))
  # y[2i + 2 - t] += x[i] k[t]: the kernel gradient is strided_conv's with
  # dy as the input and x as the output gradient, flipped and transposed.
  dk = _adjoint_kernel(strided_conv_kernel_grad(dy, x))
  return dx, dk


sub_pixel_2x.defvjp(_sub_pixel_forward, _sub_pixel_backward)


def conv_2x_down(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """(N, H, W, Cin) -> (N, H/2, W/2, Cout): `strided_conv`, whose input
  gradient is `sub_pixel_2x`. Odd H or W fall back to `strided_conv`: the
  sub-pixel adjoint only produces even sizes."""
  if x.shape[1] % 2 or x.shape[2] % 2:
    return strided_conv(x, kernel)
  return _conv_2x_down_even(x, kernel)


@jax.custom_vjp
def _conv_2x_down_even(x: jax.Array, kernel: jax.Array) -> jax.Array:
  return strided_conv(x, kernel)


def _down_forward(x, kernel):
  return _conv_2x_down_even(x, kernel), (x, kernel)


def _down_backward(residuals, dy):
  x, kernel = residuals
  return (sub_pixel_2x(dy, _adjoint_kernel(kernel)),
          strided_conv_kernel_grad(x, dy))


_conv_2x_down_even.defvjp(_down_forward, _down_backward)
