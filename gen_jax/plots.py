"""Pictures of samples: image grids and 2D scatter plots, as uint8 arrays."""

import io
import os
import textwrap

import numpy as np
from PIL import Image


def image_grid(images: np.ndarray, value_range: tuple[float, float],
               columns: int | None = None, pad: int = 1,
               scale: int = 1) -> np.ndarray:
  """(N, H, W, C) images -> one (rows*(H+pad)+pad, ..., 3) uint8 grid."""
  images = np.asarray(images, np.float32)
  lo, hi = value_range
  images = np.clip((images - lo) / (hi - lo), 0.0, 1.0)
  n, h, w, c = images.shape
  if c == 1:
    images = np.repeat(images, 3, axis=-1)
  columns = columns or int(np.ceil(np.sqrt(n)))
  rows = int(np.ceil(n / columns))
  grid = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, 3), 0.5,
                 np.float32)
  for i in range(n):
    r, col = divmod(i, columns)
    y, x = pad + r * (h + pad), pad + col * (w + pad)
    grid[y:y + h, x:x + w] = images[i, ..., :3]
  grid = (grid * 255).round().astype(np.uint8)
  if scale > 1:
    grid = np.kron(grid, np.ones((scale, scale, 1), np.uint8))
  return grid


def scatter(samples: np.ndarray, real: np.ndarray | None = None,
            modes: np.ndarray | None = None, title: str = "") -> np.ndarray:
  """A scatter plot of 2D samples over real data, as an RGB uint8 array."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
  if real is not None:
    ax.scatter(real[:, 0], real[:, 1], s=2, c="tab:blue", alpha=0.3,
               label="data")
  ax.scatter(samples[:, 0], samples[:, 1], s=2, c="tab:orange", alpha=0.5,
             label="generated")
  if modes is not None:
    ax.scatter(modes[:, 0], modes[:, 1], s=12, marker="x", c="black",
               linewidths=1, label="modes")
  reference = real if real is not None else samples
  lo, hi = np.percentile(reference, [0.5, 99.5], axis=0)
  margin = 0.25 * (hi - lo) + 1e-3
  ax.set_xlim(lo[0] - margin[0], hi[0] + margin[0])
  ax.set_ylim(lo[1] - margin[1], hi[1] + margin[1])
  ax.set_aspect("equal")
  ax.legend(loc="upper right", markerscale=2.5, fontsize=8)
  ax.set_title(title)
  buf = io.BytesIO()
  fig.savefig(buf, format="png", bbox_inches="tight")
  plt.close(fig)
  buf.seek(0)
  return np.asarray(Image.open(buf).convert("RGB"))


def scatter_grid(samples: np.ndarray, real: np.ndarray | None = None,
                 modes: np.ndarray | None = None, titles=(),
                 suptitle: str = "") -> np.ndarray:
  """One small scatter panel per run: samples (N, n, 2) -> RGB uint8."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  n = len(samples)
  cols = int(np.ceil(np.sqrt(n)))
  rows = int(np.ceil(n / cols))
  fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.3 * rows),
                           dpi=80, squeeze=False)
  reference = real if real is not None else samples.reshape(-1, 2)
  lo, hi = np.percentile(reference, [0.5, 99.5], axis=0)
  margin = 0.25 * (hi - lo) + 1e-3
  for i, ax in enumerate(axes.flat):
    ax.set_axis_off()
    if i >= n:
      continue
    if real is not None:
      ax.scatter(real[:, 0], real[:, 1], s=1, c="tab:blue", alpha=0.2)
    ax.scatter(samples[i, :, 0], samples[i, :, 1], s=1, c="tab:orange",
               alpha=0.5)
    if modes is not None:
      ax.scatter(modes[:, 0], modes[:, 1], s=12, marker="x", c="black")
    ax.set_xlim(lo[0] - margin[0], hi[0] + margin[0])
    ax.set_ylim(lo[1] - margin[1], hi[1] + margin[1])
    ax.set_aspect("equal")
    if i < len(titles):
      ax.set_title(textwrap.fill(titles[i], 36), fontsize=6)
  if suptitle:
    fig.suptitle(suptitle, fontsize=9)
  buf = io.BytesIO()
  fig.savefig(buf, format="png", bbox_inches="tight")
  plt.close(fig)
  buf.seek(0)
  return np.asarray(Image.open(buf).convert("RGB"))


def save_png(path: str, image: np.ndarray) -> None:
  Image.fromarray(image).save(path)


def save_npz(path: str, **arrays: np.ndarray) -> None:
  """Writes `arrays` as one .npz; whole or not at all (as `save_npy`)."""
  tmp = path + ".tmp"
  with open(tmp, "wb") as f:
    np.savez(f, **arrays)
  os.replace(tmp, path)


def save_npy(path: str, array: np.ndarray) -> None:
  """Writes `array` as float32 .npy; whole or not at all (a temporary file,
  then a rename)."""
  tmp = path + ".tmp"
  with open(tmp, "wb") as f:
    np.save(f, np.asarray(array, np.float32))
  os.replace(tmp, path)
