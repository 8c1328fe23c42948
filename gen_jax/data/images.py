"""Vectorised image-batch operations shared by the file-backed datasets.

Everything works on whole batches (B, H, W, C) with a few numpy calls, so that
the per-batch Python cost of the loader does not grow with the batch size.
"""

import functools

import numpy as np


def centre_square(images: np.ndarray) -> np.ndarray:
  """The largest centred square of each image: (B, H, W, C) -> (B, S, S, C).

  S = min(H, W); e.g. CelebA's 218x178 faces -> 178x178.
  """
  h, w = images.shape[1:3]
  s = min(h, w)
  top, left = (h - s) // 2, (w - s) // 2
  return images[:, top:top + s, left:left + s]


@functools.lru_cache(maxsize=32)
def resize_weights(in_size: int, out_size: int) -> np.ndarray:
  """(out_size, in_size) weights of PIL's antialiased bilinear resampling.

  A triangle filter whose radius grows with the reduction factor when
  shrinking, so that downsampling averages instead of aliasing; the rows sum
  to 1. Matches `PIL.Image.resize(..., Image.BILINEAR)` on float images.
  """
  scale = in_size / out_size
  radius = max(scale, 1.0)
  centres = (np.arange(out_size) + 0.5) * scale
  pixels = np.arange(in_size) + 0.5
  w = np.maximum(0.0, 1.0 - np.abs(pixels[None, :] - centres[:, None]) / radius)
  w /= w.sum(axis=1, keepdims=True)
  w.setflags(write=False)  # shared through the cache
  return w.astype(np.float32)


def resize(images: np.ndarray, size: int) -> np.ndarray:
  """Resizes a float batch (B, H, W, C) to (B, size, size, C), bilinear.

  Two matrix products (rows, then columns), so a whole batch costs a couple of
  BLAS calls rather than one PIL call per image.
  """
  h, w = images.shape[1:3]
  if (h, w) == (size, size):
    return images
  rows = resize_weights(h, size)  # (size, H)
  cols = resize_weights(w, size)  # (size, W)
  out = np.einsum("oh,bhwc->bowc", rows, images, optimize=True)
  out = np.einsum("pw,bowc->bopc", cols, out, optimize=True)
  return out.astype(np.float32)


def to_value_range(unit: np.ndarray, value_range) -> np.ndarray:
  """Maps values in [0, 1] affinely onto [lo, hi], as float32."""
  lo, hi = value_range
  return (lo + (hi - lo) * unit).astype(np.float32)


def binarize(unit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """Dynamic binarization: each pixel is 1 with probability its intensity.

  `unit` is in [0, 1]; returns float32 zeros and ones of the same shape.
  """
  return (rng.random(unit.shape, dtype=np.float32) < unit).astype(np.float32)


def process(images: np.ndarray, *, image_size: int, value_range,
            rng: np.random.Generator | None, crop: bool = False,
            prebinarized: bool = False) -> np.ndarray:
  """uint8 images (B, H, W, C) -> float32 (B, size, size, C) in value_range.

  Args:
    images: decoded pixels, 0..255 (or 0/1 where `prebinarized`).
    image_size: output height and width.
    value_range: (lo, hi) of the output.
    rng: draws the dynamic binarization; None for none.
    crop: take the centred square before resizing.
    prebinarized: the pixels are already 0 or 1 (TFDS `binarized_mnist`).
  """
  if crop:
    images = centre_square(images)
  if prebinarized:
    unit = (images > 0).astype(np.float32)
  else:
    unit = images.astype(np.float32) * np.float32(1 / 255)
  unit = np.clip(resize(unit, image_size), 0.0, 1.0)
  if prebinarized and unit.shape[1] != images.shape[1]:
    unit = (unit >= 0.5).astype(np.float32)  # resizing made greys: rebinarize
  if rng is not None:
    unit = binarize(unit, rng)
  return to_value_range(unit, value_range)
