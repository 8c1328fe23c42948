"""The sample picture: an image grid or a 2D scatter plot over the data.

Images: up to 64 samples; conditional models get one row per class (8
samples of class k in row k); with several seeds, one row per seed. 2D
points: a scatter over the real data with the modes marked, titled with the
other evaluators' numbers; with several seeds, one panel per seed.
"""

import numpy as np

from gen_jax import plots
from gen_jax.evaluators.base import Context, Runs, register

GRID_SIZE = 64
PER_ROW = 8


def _titles(metrics: dict) -> str:
  return ", ".join(f"{k} {v:.3g}" for k, v in metrics.items())


def class_rows(x: np.ndarray, labels: np.ndarray, num_classes: int,
               per_row: int = PER_ROW) -> np.ndarray:
  """(rows * per_row, ...) samples: row k holds the first `per_row` samples
  drawn for class k (repeated when a class has fewer; classes without
  samples are left out)."""
  rows = []
  for k in range(num_classes):
    idx = np.flatnonzero(labels == k)[:per_row]
    if len(idx) == 0:
      continue
    rows.append(x[np.resize(idx, per_row)])
  return np.concatenate(rows)


def _grid(ctx: Context) -> bool:
  # A paired translator's sample picture is `translations`' triptych.
  return "target" not in ctx.sample_keys


@register("samples", "samples", _grid, picture=True)
def samples(ctx: Context, runs: Runs):
  info = ctx.info
  many = len(runs) > 1
  if info.kind == "image":
    scale = max(1, 128 // info.example_shape[0])
    if many:  # row i: run i's first samples
      x = np.concatenate([r["x"][:PER_ROW] for r in runs])
      return [{}] * len(runs), {"samples": plots.image_grid(
          x, info.value_range, columns=PER_ROW, scale=max(1, scale // 2))}
    run = runs[0]
    if ctx.conditional:
      x = class_rows(run["x"], run["label"], ctx.num_classes)
      return [{}], {"samples": plots.image_grid(
          x, info.value_range, columns=PER_ROW, scale=scale)}
    return [{}], {"samples": plots.image_grid(run["x"][:GRID_SIZE],
                                              info.value_range, scale=scale)}
  real = ctx.reference()["x"]
  modes = info.extras.get("modes")
  if many:
    titles = [f"seed {name}: {_titles(m)}"
              for name, m in zip(ctx.run_names, ctx.metrics)]
    return [{}] * len(runs), {"samples": plots.scatter_grid(
        np.stack([r["x"] for r in runs]), real, modes, titles,
        suptitle=f"step {ctx.step}")}
  return [{}], {"samples": plots.scatter(
      runs[0]["x"], real, modes,
      title=f"step {ctx.step}  {_titles(ctx.metrics[0])}")}
