"""sub_pixel computes conv_transpose's function, gradients and parameters."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.models import upsample

# (N, H, W, Cin, Cout): batch 1, odd and one-pixel sizes, odd channel counts.
SHAPES = [(1, 1, 1, 1, 1), (1, 4, 4, 3, 5), (2, 5, 3, 7, 3),
          (3, 8, 8, 16, 1), (2, 2, 6, 64, 32)]

# Both impls sum the same 4 * Cin products per output (or N * H * W per kernel
# gradient) in a different order; in float32 (eps 1.2e-7) such sums of at most
# a few hundred O(1) terms differ by ~sqrt(n) * eps ~ 3e-6 relative to their
# scale. 2e-5 of the largest magnitude leaves margin yet catches any wrong tap,
# flip or padding (those change values by O(1) relative).
RTOL = 2e-5


def assert_close(actual: jax.Array, expected: jax.Array) -> None:
  expected = np.asarray(expected)
  scale = max(float(np.abs(expected).max()), 1e-30)
  np.testing.assert_allclose(np.asarray(actual), expected,
                             rtol=RTOL, atol=RTOL * scale)


@pytest.mark.parametrize("shape", SHAPES)
def test_sub_pixel_equals_conv_transpose(shape):
  n, h, w, cin, cout = shape
  kx, kk, kc = jax.random.split(jax.random.key(sum(shape)), 3)
  x = jax.random.normal(kx, (n, h, w, cin))
  kernel = jax.random.normal(kk, (4, 4, cin, cout))
  cotangent = jax.random.normal(kc, (n, 2 * h, 2 * w, cout))

  def vjp(fn):
    y, pullback = jax.vjp(fn, x, kernel)
    return y, pullback(cotangent)

  y_ref, (dx_ref, dk_ref) = vjp(upsample.conv_transpose_2x)
  y, (dx, dk) = vjp(upsample.sub_pixel_2x)
  assert y.shape == (n, 2 * h, 2 * w, cout)
  assert_close(y, y_ref)
  assert_close(dx, dx_ref)
  assert_close(dk, dk_ref)


def test_conv_transpose_matches_pytorch_semantics():
  # One nonzero input pixel at (i, j) spreads the kernel, flipped, over output
  # (2i + r - 1, 2j + s - 1) for r, s in 0..3: PyTorch's ConvTranspose2d(4, 2, 1)
  # with weight w[r, s] = k[3 - r, 3 - s] (transposed to (in, out, 4, 4)).
  x = jnp.zeros((1, 3, 3, 1)).at[0, 1, 1, 0].set(1.0)
  kernel = jnp.arange(16.0).reshape(4, 4, 1, 1)
  for fn in (upsample.conv_transpose_2x, upsample.sub_pixel_2x):
    y = np.asarray(fn(x, kernel))[0, :, :, 0]
    np.testing.assert_array_equal(y[1:5, 1:5], np.asarray(kernel)[::-1, ::-1, 0, 0])
    assert np.count_nonzero(y) == 15  # all taps but k[0, 0] == 0


def test_impls_share_parameters():
  x = jax.random.normal(jax.random.key(0), (2, 4, 4, 6))
  trees = {impl: upsample.UpConv2x(5, impl=impl).init(jax.random.key(1), x)
           for impl in ("conv_transpose", "sub_pixel")}
  shapes = {impl: jax.tree.map(jnp.shape, tree) for impl, tree in trees.items()}
  assert shapes["conv_transpose"] == shapes["sub_pixel"]
  assert shapes["sub_pixel"]["params"]["kernel"] == (4, 4, 6, 5)
  params = trees["conv_transpose"]
  params = jax.tree.map(lambda p: p + 0.1, params)  # nonzero bias too
  assert_close(upsample.UpConv2x(5, impl="sub_pixel").apply(params, x),
               upsample.UpConv2x(5, impl="conv_transpose").apply(params, x))


def test_all_impls_registered_and_unknown_rejected():
  assert "sub_pixel" in upsample.UPSAMPLE_IMPLS
  x = jnp.zeros((1, 2, 2, 3))
  for impl in upsample.UPSAMPLE_IMPLS:
    y, _ = upsample.UpConv2x(4, impl=impl).init_with_output(jax.random.key(0), x)
    assert y.shape == (1, 4, 4, 4)
  with pytest.raises(ValueError, match="sub_pixel"):
    upsample.UpConv2x(4, impl="nope").init(jax.random.key(0), x)


def test_conv_transpose_equals_pytorch():
  torch = pytest.importorskip("torch")
  kx, kk = jax.random.split(jax.random.key(3))
  x = jax.random.normal(kx, (2, 5, 4, 3))
  kernel = jax.random.normal(kk, (4, 4, 3, 6))
  layer = torch.nn.ConvTranspose2d(3, 6, 4, 2, 1, bias=False)
  with torch.no_grad():
    layer.weight.copy_(torch.from_numpy(
        np.asarray(kernel)[::-1, ::-1].transpose(2, 3, 0, 1).copy()))
    y_torch = layer(torch.from_numpy(np.array(x).transpose(0, 3, 1, 2)))
  assert_close(upsample.sub_pixel_2x(x, kernel),
               y_torch.numpy().transpose(0, 2, 3, 1))


def test_second_order_equals_conv_transpose():
  # sub_pixel_2x has a custom VJP; differentiating it twice (as a gradient
  # penalty through a critic built from it would) must still agree.
  kx, kk = jax.random.split(jax.random.key(11))
  x = jax.random.normal(kx, (2, 3, 5, 4))
  kernel = jax.random.normal(kk, (4, 4, 4, 3))

  def penalty(fn):
    def inner(x, kernel):
      g = jax.grad(lambda v: jnp.sum(jnp.sin(fn(v, kernel))))(x)
      return jnp.sum(g ** 2)
    return jax.grad(inner, argnums=(0, 1))

  for got, want in zip(penalty(upsample.sub_pixel_2x)(x, kernel),
                       penalty(upsample.conv_transpose_2x)(x, kernel)):
    np.testing.assert_allclose(np.asarray(got), np.asarray(want),
                               rtol=1e-4, atol=1e-4 * float(jnp.abs(want).max()))


def test_gradients_keep_canonical_convolutions_in_loops():
  # Not a timing test: XLA CPU runs convolutions with other dimension labels
  # ~100x slower inside while loops (jax-ml/jax#12868).
  x = jnp.zeros((2, 4, 4, 3))
  kernel = jnp.zeros((4, 4, 3, 5))

  def loop(x, kernel):
    grad = jax.grad(lambda k: jnp.sum(upsample.sub_pixel_2x(x, k) ** 2))
    return jax.lax.fori_loop(0, 2, lambda i, k: k - grad(k), kernel)

  hlo = jax.jit(loop).lower(x, kernel).compile().as_text()
  labels = {line.split("dim_labels=")[1].split(",")[0]
            for line in hlo.splitlines() if " convolution(" in line}
  assert labels == {"b01f_01io->b01f"}, labels
