"""DownConv2x's sub-pixel gradient equals nn.Conv's, to second order."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.models import downsample

# (N, H, W, Cin, Cout): batch 1, odd channels, H != W, odd sizes (fallback).
SHAPES = [(1, 2, 2, 1, 1), (1, 4, 6, 3, 5), (3, 8, 8, 7, 2), (2, 14, 14, 16, 9),
          (2, 7, 5, 3, 4)]
# Same products summed in a different order in float32: see test_upsample.py.
# Second-order terms chain three such sums, hence the wider tolerance.
RTOL = {1: 2e-5, 2: 1e-4}


def assert_close(actual, expected, order: int = 1) -> None:
  expected = np.asarray(expected)
  scale = max(float(np.abs(expected).max()), 1e-30)
  np.testing.assert_allclose(np.asarray(actual), expected, rtol=RTOL[order],
                             atol=RTOL[order] * scale)


def reference(x, kernel):
  return nn.Conv(kernel.shape[-1], (4, 4), strides=(2, 2),
                 padding=((1, 1), (1, 1)), use_bias=False).apply(
                     {"params": {"kernel": kernel}}, x)


def inputs(shape):
  n, h, w, cin, cout = shape
  kx, kk = jax.random.split(jax.random.key(sum(shape)))
  return (jax.random.normal(kx, (n, h, w, cin)),
          jax.random.normal(kk, (4, 4, cin, cout)))


@pytest.mark.parametrize("shape", SHAPES)
def test_output_and_gradients_equal_nn_conv(shape):
  x, kernel = inputs(shape)
  y_ref, vjp_ref = jax.vjp(reference, x, kernel)
  y, vjp = jax.vjp(downsample.conv_2x_down, x, kernel)
  assert_close(y, y_ref)
  cotangent = jax.random.normal(jax.random.key(7), y.shape)
  for got, want in zip(vjp(cotangent), vjp_ref(cotangent)):
    assert_close(got, want)


@pytest.mark.parametrize("shape", SHAPES)
def test_penalty_gradients_equal_nn_conv(shape):
  # A gradient penalty differentiates the input gradient again.
  x, kernel = inputs(shape)

  def penalty(conv):
    def fn(x, kernel):
      g = jax.grad(lambda v: jnp.sum(jnp.sin(conv(v, kernel))))(x)
      return jnp.sum(jnp.sqrt(jnp.sum(g.reshape(g.shape[0], -1) ** 2, 1)))
    return jax.grad(fn, argnums=(0, 1))

  for got, want in zip(penalty(downsample.conv_2x_down)(x, kernel),
                       penalty(reference)(x, kernel)):
    assert_close(got, want, order=2)


def test_parameters_match_nn_conv():
  x = jnp.zeros((2, 8, 8, 3))
  conv = nn.Conv(6, (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)),
                 use_bias=False)
  want = jax.tree.map(jnp.shape, conv.init(jax.random.key(0), x))
  for impl in downsample.DOWNSAMPLE_IMPLS:
    got = downsample.DownConv2x(6, impl=impl).init(jax.random.key(0), x)
    assert jax.tree.map(jnp.shape, got) == want
  with pytest.raises(ValueError, match="sub_pixel_grad"):
    downsample.DownConv2x(6, impl="nope").init(jax.random.key(0), x)


def test_fast_inside_loops():
  # Not a timing test: checks that the kernel gradient keeps XLA's canonical
  # dimension labels, the form XLA CPU runs fast inside while loops.
  x = jnp.zeros((2, 8, 8, 3))
  kernel = jnp.zeros((4, 4, 3, 5))

  def loop(x, kernel):
    grad = jax.grad(lambda k: jnp.sum(downsample.conv_2x_down(x, k)))
    return jax.lax.fori_loop(0, 2, lambda i, k: k - grad(k), kernel)

  hlo = jax.jit(loop).lower(x, kernel).compile().as_text()
  labels = {line.split("dim_labels=")[1].split(",")[0]
            for line in hlo.splitlines() if " convolution(" in line}
  assert labels == {"b01f_01io->b01f"}, labels
