"""Datasets that ship with the code or are generated: no download needed.

- `ring`, `grid`: the PacGAN 2D mixtures (ring: 8 Gaussians on the unit circle,
  std 0.01; grid: 25 Gaussians at {-4,-2,0,2,4}^2, std 0.05), 100,000 training
  points and 2,500 held-out points.
- `swiss_roll`: scikit-learn's 2D swiss roll, scaled to about [-1, 1].
- `digits`: the 1,797 real 8x8 handwritten digits bundled with scikit-learn,
  resized (bilinear) to `image_size` (16 by default); 297 held out.
- `stacked_digits`: three independently drawn digits as the RGB channels (1000
  modes); the label triple is kept in `label` (shape (3,)).
"""

import functools
import gzip
import importlib.util
import os

import numpy as np
from PIL import Image

from gen_jax.data.base import ArrayStream, DatasetInfo, array_eval_batches
from gen_jax.errors import ConfigError

_NUM_MIXTURE_TRAIN = 100_000
_NUM_MIXTURE_EVAL = 2_500
_NUM_DIGITS_EVAL = 297
_NUM_STACKED_TRAIN = 60_000
_NUM_STACKED_EVAL = 10_000


def ring_modes() -> np.ndarray:
  angles = 2 * np.pi * np.arange(8) / 8
  return np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)


def grid_modes() -> np.ndarray:
  values = np.array([-4.0, -2.0, 0.0, 2.0, 4.0], np.float32)
  return np.stack(np.meshgrid(values, values, indexing="ij"), -1).reshape(-1, 2)


def sample_mixture(modes: np.ndarray, std: float, n: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
  """n points from the equal-weight mixture; returns (points, mode index)."""
  which = rng.integers(0, len(modes), size=n)
  points = modes[which] + std * rng.standard_normal((n, modes.shape[1]))
  return points.astype(np.float32), which.astype(np.int32)


class InMemoryDataset:
  """A dataset held in numpy arrays, with an optional per-batch transform."""

  def __init__(self, info: DatasetInfo, train: dict, eval_: dict,
               transform=None):
    self.info = info
    self._train = train
    self._eval = eval_
    self._transform = transform

  def arrays(self, split: str) -> dict:
    """The whole 'train' or 'test' (held-out) split, untransformed."""
    return {"train": self._train, "test": self._eval}[split]

  def train_stream(self, *, seed, local_batch_size, process_index,
                   process_count):
    return ArrayStream(self._train, seed=seed,
                       local_batch_size=local_batch_size,
                       process_index=process_index,
                       process_count=process_count, transform=self._transform)

  def eval_batches(self, *, local_batch_size, process_index, process_count):
    arrays = self._eval
    if self._transform is not None:  # fixed draw, the same on every pass
      arrays = self._transform(arrays, np.random.default_rng(0))
    return array_eval_batches(arrays, local_batch_size=local_batch_size,
                              process_index=process_index,
                              process_count=process_count)


def _mixture(name: str, modes: np.ndarray, std: float) -> InMemoryDataset:
  rng = np.random.default_rng(1234)
  x, y = sample_mixture(modes, std, _NUM_MIXTURE_TRAIN, rng)
  x_eval, y_eval = sample_mixture(modes, std, _NUM_MIXTURE_EVAL, rng)
  info = DatasetInfo(
      name=name, kind="points", example_shape=(2,),
      value_range=(float(x.min()), float(x.max())),
      num_train=len(x), num_eval=len(x_eval),
      extras={"modes": modes, "mode_std": std})
  return InMemoryDataset(info, {"x": x, "label": y},
                         {"x": x_eval, "label": y_eval})


def ring(cfg) -> InMemoryDataset:
  del cfg
  return _mixture("ring", ring_modes(), 0.01)


def grid(cfg) -> InMemoryDataset:
  del cfg
  return _mixture("grid", grid_modes(), 0.05)


def swiss_roll(cfg) -> InMemoryDataset:
  del cfg
  from sklearn.datasets import make_swiss_roll
  points, _ = make_swiss_roll(_NUM_MIXTURE_TRAIN + _NUM_MIXTURE_EVAL,
                              noise=0.25, random_state=1234)
  x = (points[:, [0, 2]] / 12.5).astype(np.float32)
  info = DatasetInfo(name="swiss_roll", kind="points", example_shape=(2,),
                     value_range=(float(x.min()), float(x.max())),
                     num_train=_NUM_MIXTURE_TRAIN, num_eval=_NUM_MIXTURE_EVAL)
  return InMemoryDataset(info, {"x": x[:_NUM_MIXTURE_TRAIN]},
                         {"x": x[_NUM_MIXTURE_TRAIN:]})


def sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
  """scikit-learn's digits: images (1797, 8, 8) float64 in 0..16, labels.

  Read from its data file as `sklearn.datasets.load_digits` reads it, without
  importing scikit-learn, which takes seconds on the way to a run's first
  step (its own loader where the file is not found).
  """
  spec = importlib.util.find_spec("sklearn")  # finds, does not import
  path = os.path.join(spec.submodule_search_locations[0], "datasets", "data",
                      "digits.csv.gz") if spec else ""
  if not os.path.exists(path):
    from sklearn.datasets import load_digits
    digits = load_digits()
    return digits.images, digits.target
  with gzip.open(path, "rt", encoding="utf-8") as f:
    data = np.loadtxt(f, delimiter=",")
  return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int)


@functools.lru_cache(maxsize=4)
def digit_images(image_size: int) -> tuple[np.ndarray, np.ndarray]:
  """All 1,797 scikit-learn digits as (N, S, S, 1) floats in [0, 1], labels."""
  raw, labels = sklearn_digits()
  images = raw.astype(np.float32) / 16.0
  if image_size != 8:
    images = np.stack([
        np.asarray(Image.fromarray(im).resize((image_size, image_size),
                                              Image.BILINEAR))
        for im in images])
  images = np.clip(images, 0.0, 1.0)[..., None]
  return images, labels.astype(np.int32)


def _digit_split(image_size: int):
  images, labels = digit_images(image_size)
  perm = np.random.default_rng(0).permutation(len(images))
  ev, tr = perm[:_NUM_DIGITS_EVAL], perm[_NUM_DIGITS_EVAL:]
  return (images[tr], labels[tr]), (images[ev], labels[ev])


def _scale(x: np.ndarray, value_range) -> np.ndarray:
  lo, hi = value_range
  return (lo + (hi - lo) * x).astype(np.float32)


def _binarizer(value_range):
  """Dynamic binarization: each pixel is 1 with probability its intensity."""
  lo, hi = value_range

  def transform(batch, rng):
    p = (batch["x"] - lo) / (hi - lo)
    x = np.where(rng.random(p.shape, dtype=np.float32) < p, hi, lo)
    return {**batch, "x": x.astype(np.float32)}
  return transform


def _image_info(name, images_train, images_eval, value_range, **extras):
  return DatasetInfo(name=name, kind="image",
                     example_shape=tuple(images_train.shape[1:]),
                     value_range=tuple(value_range),
                     num_train=len(images_train), num_eval=len(images_eval),
                     extras=extras)


def _train_subset(name: str, available: int) -> int:
  """'digits:N' -> N (the first N training examples; 0: 'digits', all)."""
  _, _, arg = name.partition(":")
  if not arg:
    return 0
  if not arg.isdigit() or not 1 <= int(arg) <= available:
    raise ConfigError(f"config.data.name={name!r}: after 'digits:' comes the "
                      f"number of training examples kept, 1 to {available} "
                      "(the held-out split is unchanged)")
  return int(arg)


def digits(cfg) -> InMemoryDataset:
  """The embedded digits; 'digits:N' keeps the first N of the (fixed,
  shuffled) training split, for small-data experiments, and the whole
  held-out split."""
  (x, y), (x_eval, y_eval) = _digit_split(cfg.image_size)
  n = _train_subset(cfg.name, len(x))
  if n:
    x, y = x[:n], y[:n]
  value_range = tuple(cfg.value_range)
  info = _image_info("digits", x, x_eval, value_range, num_classes=10,
                     classifier="digits")
  return InMemoryDataset(
      info, {"x": _scale(x, value_range), "label": y},
      {"x": _scale(x_eval, value_range), "label": y_eval},
      transform=_binarizer(value_range) if cfg.binarize else None)


def stack_channels(images: np.ndarray, labels: np.ndarray, n: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
  """n examples of three independently drawn digits as the channels."""
  idx = rng.integers(0, len(images), size=(n, 3))
  stacked = np.concatenate([images[idx[:, c]] for c in range(3)], axis=-1)
  return stacked, labels[idx]


def stacked_digits(cfg) -> InMemoryDataset:
  (x, y), (x_eval, y_eval) = _digit_split(cfg.image_size)
  rng = np.random.default_rng(4321)
  xs, ys = stack_channels(x, y, _NUM_STACKED_TRAIN, rng)
  xs_eval, ys_eval = stack_channels(x_eval, y_eval, _NUM_STACKED_EVAL, rng)
  value_range = tuple(cfg.value_range)
  info = _image_info("stacked_digits", xs, xs_eval, value_range,
                     num_classes=10, num_modes=1000, classifier="digits")
  return InMemoryDataset(info, {"x": _scale(xs, value_range), "label": ys},
                         {"x": _scale(xs_eval, value_range), "label": ys_eval})
