"""L1, PSNR, SSIM and sharpness against hand-computed values and an
independent NumPy SSIM (2D correlation with the outer-product window)."""

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

from gen_jax.metrics import pixels


def numpy_ssim(x, y, data_range):
  """Wang et al. 2004 written out: 11x11 Gaussian (sigma 1.5) weighted
  statistics at every valid position of each channel, then the mean."""
  t = np.arange(11) - 5.0
  g = np.exp(-t ** 2 / (2 * 1.5 ** 2))
  w = np.outer(g, g) / np.outer(g, g).sum()
  c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
  out = []
  for xi, yi in zip(x.astype(np.float64), y.astype(np.float64)):
    vals = []
    for c in range(xi.shape[-1]):
      a, b = xi[..., c], yi[..., c]
      h, wd = a.shape
      for i in range(h - 10):
        for j in range(wd - 10):
          pa, pb = a[i:i + 11, j:j + 11], b[i:i + 11, j:j + 11]
          ma, mb = (w * pa).sum(), (w * pb).sum()
          va = (w * (pa - ma) ** 2).sum()
          vb = (w * (pb - mb) ** 2).sum()
          cov = (w * (pa - ma) * (pb - mb)).sum()
          vals.append((2 * ma * mb + c1) * (2 * cov + c2)
                      / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2)))
    out.append(np.mean(vals))
  return np.array(out)


def test_psnr_and_l1_by_hand():
  x = np.zeros((2, 4, 4, 1), np.float32)
  y = x.copy()
  y[0] += 0.5        # MSE 0.25 on a range of 2: 10 log10(4 / 0.25)
  y[1, 0, 0, 0] = 1  # MSE 1/16: 10 log10(64)
  np.testing.assert_allclose(pixels.psnr(jnp.asarray(x), jnp.asarray(y), 2.0),
                             [10 * np.log10(16), 10 * np.log10(64)],
                             rtol=1e-5)
  np.testing.assert_allclose(pixels.l1(jnp.asarray(x), jnp.asarray(y)),
                             [0.5, 1 / 16], rtol=1e-6)


def test_ssim_matches_an_independent_numpy_computation():
  rng = np.random.default_rng(0)
  x = rng.uniform(-1, 1, (3, 16, 14, 2)).astype(np.float32)
  y = np.clip(x + 0.3 * rng.standard_normal(x.shape), -1, 1).astype(
      np.float32)
  y[2] = ndimage.uniform_filter(x[2], size=(3, 3, 1))  # a blurred copy
  got = np.asarray(pixels.ssim(jnp.asarray(x), jnp.asarray(y), 2.0))
  np.testing.assert_allclose(got, numpy_ssim(x, y, 2.0), rtol=1e-4, atol=1e-5)
  same = pixels.ssim(jnp.asarray(x), jnp.asarray(x), 2.0)
  np.testing.assert_allclose(same, 1.0, atol=1e-5)
  assert np.all(got < 0.99)


def test_ssim_refuses_images_smaller_than_its_window():
  with pytest.raises(ValueError, match="11x11 window"):
    pixels.ssim(jnp.zeros((1, 8, 8, 1)), jnp.zeros((1, 8, 8, 1)), 2.0)


def test_sharpness_by_hand():
  x = np.zeros((2, 3, 3, 1), np.float32)
  x[0, :, 1:] = 2.0    # a vertical edge of height 2 (the whole range)
  # Forward differences on the 2x2 top-left positions: dx = 1 in column 0,
  # 0 in column 1; dy = 0: mean magnitude 1/2.
  got = np.asarray(pixels.sharpness(jnp.asarray(x), 2.0))
  np.testing.assert_allclose(got, [0.5, 0.0], atol=1e-5)
  blurred = ndimage.uniform_filter(np.asarray(
      np.random.default_rng(1).uniform(size=(1, 16, 16, 1)), np.float32),
      size=(1, 3, 3, 1))
  sharp = np.random.default_rng(1).uniform(size=(1, 16, 16, 1)).astype(
      np.float32)
  assert (pixels.sharpness(jnp.asarray(blurred), 1.0)
          < pixels.sharpness(jnp.asarray(sharp), 1.0))


def test_bicubic_keeps_constants_and_shape():
  x = jnp.full((2, 4, 4, 1), 0.3)
  y = pixels.bicubic(x, (8, 8))
  assert y.shape == (2, 8, 8, 1)
  np.testing.assert_allclose(y, 0.3, atol=1e-6)
