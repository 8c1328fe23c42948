"""Per-image quality of an output against its target (paired translation,
super-resolution), as pure JAX functions of (B, H, W, C) batches.

Each returns (B,) values; the held-out evaluation averages them over the
split (mean per-image PSNR, as super-resolution papers report).

- `l1`: mean absolute error, in the data's units.
- `psnr`: 10 log10(range^2 / MSE), range = high - low of the value range.
- `ssim`: Wang et al. 2004 with their Gaussian window (11x11, sigma 1.5),
  K1 = 0.01, K2 = 0.03, over the valid positions, averaged over channels.
- `sharpness`: mean gradient magnitude sqrt(dx^2 + dy^2) (forward
  differences) in units of the range: blurry outputs (an L1-trained
  network's conditional median) score low.
- `bicubic`: the bicubic upsampling the super-resolution results are
  compared with.
"""

import jax
import jax.numpy as jnp
import numpy as np

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def l1(x: jax.Array, y: jax.Array) -> jax.Array:
  return jnp.mean(jnp.abs(x - y), axis=(1, 2, 3))


def psnr(x: jax.Array, y: jax.Array, data_range: float) -> jax.Array:
  mse = jnp.mean(jnp.square(x.astype(jnp.float32) - y), axis=(1, 2, 3))
  return 10.0 * jnp.log10(data_range ** 2 / jnp.maximum(mse, 1e-12))


def gaussian_window(size: int = SSIM_WINDOW,
                    sigma: float = SSIM_SIGMA) -> np.ndarray:
  """The normalised 1D Gaussian of SSIM's window (outer product = 2D)."""
  t = np.arange(size, dtype=np.float64) - (size - 1) / 2
  g = np.exp(-t ** 2 / (2 * sigma ** 2))
  return (g / g.sum()).astype(np.float32)


def _filter(x: jax.Array, g: np.ndarray) -> jax.Array:
  """Separable valid-mode filtering of (B, H, W, C) with the 1D window g."""
  c = x.shape[-1]
  k = len(g)
  kh = jnp.tile(jnp.asarray(g).reshape(k, 1, 1, 1), (1, 1, 1, c))
  kw = jnp.tile(jnp.asarray(g).reshape(1, k, 1, 1), (1, 1, 1, c))
  dn = ("NHWC", "HWIO", "NHWC")
  x = jax.lax.conv_general_dilated(x, kh, (1, 1), "VALID",
                                   dimension_numbers=dn,
                                   feature_group_count=c,
                                   precision=jax.lax.Precision.HIGHEST)
  return jax.lax.conv_general_dilated(x, kw, (1, 1), "VALID",
                                      dimension_numbers=dn,
                                      feature_group_count=c,
                                      precision=jax.lax.Precision.HIGHEST)


def ssim(x: jax.Array, y: jax.Array, data_range: float) -> jax.Array:
  """Mean SSIM of each image pair (Wang et al. 2004, eq. 13)."""
  if min(x.shape[1:3]) < SSIM_WINDOW:
    raise ValueError(f"SSIM's {SSIM_WINDOW}x{SSIM_WINDOW} window needs "
                     f"images of at least that size; got {x.shape[1:3]}")
  x, y = x.astype(jnp.float32), y.astype(jnp.float32)
  g = gaussian_window()
  c1 = (SSIM_K1 * data_range) ** 2
  c2 = (SSIM_K2 * data_range) ** 2
  mx, my = _filter(x, g), _filter(y, g)
  sxx = _filter(x * x, g) - mx * mx
  syy = _filter(y * y, g) - my * my
  sxy = _filter(x * y, g) - mx * my
  s = ((2 * mx * my + c1) * (2 * sxy + c2)
       / ((mx * mx + my * my + c1) * (sxx + syy + c2)))
  return jnp.mean(s, axis=(1, 2, 3))


def sharpness(x: jax.Array, data_range: float) -> jax.Array:
  """Mean gradient magnitude over the (H-1) x (W-1) forward differences."""
  x = x.astype(jnp.float32) / data_range
  dx = x[:, :-1, 1:] - x[:, :-1, :-1]
  dy = x[:, 1:, :-1] - x[:, :-1, :-1]
  return jnp.mean(jnp.sqrt(dx * dx + dy * dy + 1e-12), axis=(1, 2, 3))


def bicubic(x: jax.Array, size: tuple[int, int]) -> jax.Array:
  """(B, h, w, C) -> (B, *size, C), bicubic (Keys, a = -0.5), antialiased
  when shrinking (`jax.image.resize`)."""
  return jax.image.resize(x, (x.shape[0], *size, x.shape[-1]), "bicubic")
