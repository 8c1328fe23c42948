"""Vectorised image-batch operations shared by the file-backed datasets.

Small images are processed as whole batches (B, H, W, C) with a few numpy
calls, so that the per-batch Python cost of the loader does not grow with the
batch size; large ones (CelebA, photo folders) are cropped and resized per
image by PIL, whose cost there is dominated by decoding anyway.
"""

import functools

import numpy as np
from PIL import Image


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
  w = (w / w.sum(axis=1, keepdims=True)).astype(np.float32)
  w.setflags(write=False)  # shared through the cache
  return w


def resize(images: np.ndarray, size: int) -> np.ndarray:
  """Resizes a float batch (B, H, W, C) to (B, size, size, C), bilinear.

  Two batched matrix products (rows, then columns): a few numpy calls per
  batch instead of one PIL call per image. Batched rather than one big GEMM
  because each small product stays single-threaded in OpenBLAS, whose thread
  pool otherwise fights the reader threads and JAX for the cores.
  """
  b, h, w, c = images.shape
  if (h, w) == (size, size):
    return images
  # Rows: (size, H) @ (H, W*C) per image.
  out = np.matmul(resize_weights(h, size), images.reshape(b, h, w * c))
  # Columns: (size*C, W) @ (W, size) per image, then C back last.
  out = out.reshape(b, size, w, c).transpose(0, 1, 3, 2).reshape(b, -1, w)
  out = np.matmul(out, resize_weights(w, size).T)
  out = out.reshape(b, size, c, size).transpose(0, 1, 3, 2)
  return np.ascontiguousarray(out, np.float32)


def square_resize(image: Image.Image, size: int) -> np.ndarray:
  """Centred largest square of a PIL image, resized: (size, size[, C]) uint8.

  PIL's C resampler for large sources (photos, CelebA): cheaper per image
  than the matrix products are per batch at those sizes.
  """
  w, h = image.size
  s = min(w, h)
  left, top = (w - s) // 2, (h - s) // 2
  # crop, then resize: resize(box=...) would blend in pixels outside the box.
  square = image.crop((left, top, left + s, top + s))
  return np.asarray(square.resize((size, size), Image.BILINEAR))


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
    crop: take the centred square before resizing; done per image by PIL,
      as the images that need it are large (CelebA).
    prebinarized: the pixels are already 0 or 1 (TFDS `binarized_mnist`).
  """
  return finish(unit_pixels(images, image_size=image_size, crop=crop,
                            prebinarized=prebinarized), value_range, rng)


def unit_pixels(images: np.ndarray, *, image_size: int, crop: bool = False,
                prebinarized: bool = False) -> np.ndarray:
  """The deterministic part of `process`: crop, resize, scale to [0, 1]
  (float32). What `resized.py` stores once per dataset and size."""
  if crop:
    images = np.stack([_square_resize_array(im, image_size) for im in images])
  if prebinarized:
    unit = (images > 0).astype(np.float32)
  else:
    unit = images.astype(np.float32) * np.float32(1 / 255)
  unit = np.clip(resize(unit, image_size), 0.0, 1.0)
  if prebinarized and unit.shape[1] != images.shape[1]:
    unit = (unit >= 0.5).astype(np.float32)  # resizing made greys: rebinarize
  return unit


def finish(unit: np.ndarray, value_range,
           rng: np.random.Generator | None) -> np.ndarray:
  """The per-batch part of `process`: the optional dynamic binarization,
  then the value range."""
  if rng is not None:
    unit = binarize(unit, rng)
  return to_value_range(unit, value_range)


def _square_resize_array(image: np.ndarray, size: int) -> np.ndarray:
  """(H, W, C) uint8 -> (size, size, C) uint8 through `square_resize`."""
  c = image.shape[-1]
  pil = Image.fromarray(image[..., 0] if c == 1 else image)
  return square_resize(pil, size).reshape(size, size, c)
