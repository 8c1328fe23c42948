"""The image-to-image picture: input | output | target for held-out sources.

It reads the samples of a paired translator (`trainers/translation.py`:
'x' the outputs for held-out sources 'cond', 'target' their targets; it
applies when the trainer's `sample_keys` list 'cond' and 'target').
One row per held-out example (`ROWS` of them; with several seeds,
the first few of each seed's rows): the source image (`cond`, enlarged with
nearest-neighbour when it is smaller, e.g. a super-resolution input), the
bicubic upsampling of it beside when the source is smaller (the baseline a
super-resolution model must beat), the model's output and the target. It is
the translation models' sample picture (saved as samples/step_NNNNNNN.png).
Its metrics (L1, PSNR, SSIM, sharpness) are the trainer's held-out sums.
"""

import numpy as np

from gen_jax import plots
from gen_jax.evaluators.base import Context, Runs, register
from gen_jax.metrics import pixels

ROWS = 8


def _as_rgb(x: np.ndarray, channels: int) -> np.ndarray:
  if x.shape[-1] == channels:
    return x
  if x.shape[-1] == 1:
    return np.repeat(x, channels, axis=-1)
  return x[..., :channels]


def triptych_rows(cond: np.ndarray, x: np.ndarray,
                  target: np.ndarray) -> tuple[np.ndarray, int]:
  """((n * columns, H, W, C) images in row order, columns): source
  (nearest-enlarged), bicubic
  (only when the source is smaller), output, target for each example."""
  n, h, w, c = target.shape
  cond = _as_rgb(cond, c)
  columns = []
  if cond.shape[1:3] != (h, w):
    fy, fx = h // cond.shape[1], w // cond.shape[2]
    columns.append(cond.repeat(fy, axis=1).repeat(fx, axis=2))
    columns.append(np.asarray(pixels.bicubic(cond, (h, w))))
  else:
    columns.append(cond)
  columns += [_as_rgb(x, c), target]
  return np.stack(columns, axis=1).reshape(-1, h, w, c), len(columns)


def _paired(ctx: Context) -> bool:
  return ctx.is_image and {"cond", "target"} <= set(ctx.sample_keys)


@register("translations", "samples", _paired, picture=True)
def translations(ctx: Context, runs: Runs):
  per = max(1, ROWS // len(runs))
  rows, columns = [], 0
  for r in runs:
    grid, columns = triptych_rows(r["cond"][:per], r["x"][:per],
                                  r["target"][:per])
    rows.append(grid)
  images = np.concatenate(rows)
  scale = max(1, 64 // ctx.info.example_shape[0])
  picture = plots.image_grid(images, ctx.info.value_range, columns=columns,
                             scale=scale)
  return [{}] * len(runs), {"samples": picture}
