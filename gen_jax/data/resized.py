r"""TFDS image datasets prepared once at the training resolution.

    python -m gen_jax.prepare_data celeb_a --image_size=64

Without this, every CelebA batch decodes 64 JPEGs of 218x178 pixels, crops
and resizes them (about 2-3 ms an image on this machine) while the step runs,
and on a few cores that work takes CPU from XLA. `write` stores, for each
split, the pixels after the deterministic part of the pipeline
(`images.unit_pixels`: crop, resize, scale) and the labels, as `.npy` files
that training memory-maps; a batch is then an index into an array. Dynamic
binarization and the value range are applied per batch as before, so a
prepared dataset gives bitwise the batches of the unprepared one
(tests/test_resized_data.py).

Layout: DATA_DIR/gen_jax_resized/NAME/SIZEpx/{meta.json, SPLIT_x.npy,
SPLIT_label.npy}. Pixels are uint8 where that is exact (the cropped datasets,
which PIL resizes to uint8) and float32 otherwise. `meta.json` records the
source's fingerprint (`tfds_data.fingerprint`): a copy made from other data
(e.g. the test mock) is ignored with a warning.
"""

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable

import numpy as np
from tqdm import tqdm

from gen_jax.data import images as images_lib
from gen_jax.data.base import Batch
from gen_jax.errors import ConfigError

SPLITS = ("train", "test")


def directory(data_dir: str, name: str, size: int) -> str:
  return os.path.join(data_dir, "gen_jax_resized", name, f"{size}px")


def command(name: str, size: int, data_dir: str) -> str:
  return (f"python -m gen_jax.prepare_data {name} --image_size={size} "
          f"--data_dir={data_dir}")


def write(name: str, size: int, data_dir: str, chunk: int = 512) -> str:
  """Processes every split of TFDS-backed dataset `name` at `size` and
  writes them (atomically: a directory renamed into place). Returns it."""
  from gen_jax.data import tfds_data
  spec = tfds_data.SPECS[name]
  if "://" in data_dir:
    raise ConfigError(f"prepare_data --image_size needs a local --data_dir "
                      f"(training memory-maps the copy), not {data_dir}")
  if spec.stacked:
    raise ValueError(f"{name}: stacked examples are assembled per batch; "
                     "prepare mnist instead")
  final = directory(data_dir, name, size)
  os.makedirs(os.path.dirname(final), exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=f".{size}px-", dir=os.path.dirname(final))
  try:
    meta = {"fingerprint": tfds_data.fingerprint(name, data_dir), "splits": {}}
    for split in SPLITS:
      source = tfds_data.open_split(name, split, data_dir)
      n = len(source)
      x = y = None
      dtype = np.uint8 if spec.crop else np.float32
      for lo in tqdm(range(0, n, chunk), desc=f"{name} {split} at {size}px",
                     unit="chunk", file=sys.stderr):
        records = source.__getitems__(list(range(lo, min(lo + chunk, n))))
        unit = images_lib.unit_pixels(
            np.stack([r["image"] for r in records]), image_size=size,
            crop=spec.crop, prebinarized=spec.prebinarized)
        if x is None:
          x = np.lib.format.open_memmap(
              os.path.join(tmp, f"{split}_x.npy"), "w+", dtype,
              (n, *unit.shape[1:]))
          if spec.labels:
            y = np.lib.format.open_memmap(
                os.path.join(tmp, f"{split}_label.npy"), "w+", np.int32, (n,))
        # uint8 is exact here: the cropped images come out of PIL as uint8.
        x[lo:lo + len(unit)] = (np.rint(unit * 255) if dtype == np.uint8
                                else unit)
        if y is not None:
          y[lo:lo + len(unit)] = [r["label"] for r in records]
      if x is not None:
        x.flush()
      meta["splits"][split] = {"num_examples": n, "dtype": np.dtype(dtype).name}
    with open(os.path.join(tmp, "meta.json"), "w") as f:
      json.dump(meta, f, indent=1)
    if os.path.exists(final):
      shutil.rmtree(final)
    os.rename(tmp, final)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return final


class PreparedLoader:
  """`pipeline.LoadFn` over a prepared split: an index, then the per-batch
  part of the pipeline (`images.finish`)."""

  def __init__(self, x: np.ndarray, labels: np.ndarray | None, value_range):
    self._x = x
    self._labels = labels
    self._range = tuple(value_range)

  def __call__(self, ids: np.ndarray, rng) -> Batch:
    x = self._x[ids]
    unit = (x.astype(np.float32) * np.float32(1 / 255)
            if x.dtype == np.uint8 else x)
    batch = {"x": images_lib.finish(unit, self._range, rng)}
    if self._labels is not None:
      batch["label"] = np.asarray(self._labels[ids])
    return batch


def open_split(name: str, split: str, size: int, data_dir: str,
               fingerprint: Callable[[], str],
               value_range) -> tuple[PreparedLoader, int] | None:
  """The prepared split's loader and size, or None when there is no copy
  for this data (a copy of other data, by `fingerprint()`, is ignored with a
  warning)."""
  if "://" in data_dir:  # memory maps need a local file
    return None
  path = directory(data_dir, name, size)
  meta_path = os.path.join(path, "meta.json")
  if not os.path.exists(meta_path):
    return None
  with open(meta_path) as f:
    meta = json.load(f)
  if meta.get("fingerprint") != fingerprint() or split not in meta["splits"]:
    print(f"warning: ignoring {path}: prepared from other data than "
          f"{name} in {data_dir} now holds; redo it with: "
          f"{command(name, size, data_dir)}", file=sys.stderr)
    return None
  n = meta["splits"][split]["num_examples"]
  if n == 0:
    return PreparedLoader(np.zeros((0, size, size, 1), np.float32), None,
                          value_range), 0
  x = np.load(os.path.join(path, f"{split}_x.npy"), mmap_mode="r")
  label_path = os.path.join(path, f"{split}_label.npy")
  labels = (np.load(label_path, mmap_mode="r")
            if os.path.exists(label_path) else None)
  return PreparedLoader(x, labels, value_range), n
