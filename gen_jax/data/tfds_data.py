"""Image datasets from TensorFlow Datasets, read without TensorFlow.

Names (`config.data.name`) and what they read:

  mnist, fashion_mnist   28x28x1, label     TFDS mnist / fashion_mnist
  cifar10                32x32x3, label     TFDS cifar10
  celeb_a                178x178x3 centre   TFDS celeb_a (218x178 faces)
  binarized_mnist        28x28x1, 0/1       TFDS binarized_mnist (Larochelle)
  stacked_mnist          28x28x3, label (3,) three MNIST digits as RGB

Images are resized (antialiased bilinear) to `image_size` when it differs from
the native size and scaled to `value_range`; `binarize` draws a dynamic
binarization (each pixel on with probability its intensity) per batch.
Held-out batches come from the `test` split.

`mnist` and `stacked_mnist` name the digit classifier of their evaluation
metrics (`info.extras['classifier']`, see `gen_jax.metrics.classifier`),
which is trained on this MNIST (`labelled_splits`) on first use.

Data are read from an array_record copy prepared once with
`python -m gen_jax.prepare_data NAME` (which does need TensorFlow), through
`tfds.data_source` into a grain pipeline (`pipeline.py`).
"""

import contextlib
import dataclasses
import hashlib
import logging
import os
import sys
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds

from gen_jax.data import images as images_lib
from gen_jax.data import pipeline, resized
from gen_jax.data.base import Batch, DatasetInfo
from gen_jax.errors import ConfigError, DataError

# stacked_mnist draws its digit triples from these fixed seeds, so that the
# 1000-mode dataset is the same in every run; the training seed shuffles it.
_STACKED_TRAIN_SEED = 4321
_STACKED_EVAL_SEED = 4322


@dataclasses.dataclass(frozen=True)
class Spec:
  """How a name maps onto a TFDS dataset.

  Attributes:
    tfds_name: the TFDS dataset read (and prepared).
    native_size: image side after the optional centre crop.
    channels: channels of `x`.
    labels: copy the `label` feature into batches.
    crop: take the centred square first (CelebA).
    prebinarized: stored pixels are already 0/1.
    stacked: three digits per example as the channels (stacked MNIST).
    classifier: the `gen_jax.metrics.classifier` name whose features give
      the image metrics (and, stacked, the per-channel labels of modes).
  """
  tfds_name: str
  native_size: int
  channels: int
  labels: bool = True
  crop: bool = False
  prebinarized: bool = False
  stacked: bool = False
  classifier: str | None = None


SPECS: dict[str, Spec] = {
    "mnist": Spec("mnist", 28, 1, classifier="mnist"),
    "fashion_mnist": Spec("fashion_mnist", 28, 1),
    "cifar10": Spec("cifar10", 32, 3),
    "celeb_a": Spec("celeb_a", 178, 3, labels=False, crop=True),
    "binarized_mnist": Spec("binarized_mnist", 28, 1, labels=False,
                            prebinarized=True),
    "stacked_mnist": Spec("mnist", 28, 3, stacked=True, classifier="mnist"),
}


def resolve_data_dir(data_dir: str | None) -> str:
  """config.data.data_dir, else $TFDS_DATA_DIR, else TFDS's default."""
  return str(data_dir or os.environ.get("TFDS_DATA_DIR")
             or tfds.core.constants.DATA_DIR)


def prepare_command(name: str, data_dir: str) -> str:
  return f"python -m gen_jax.prepare_data {name} --data_dir={data_dir}"


class _DropNoInfoWarnings(logging.Filter):
  """Drops TFDS's "Variant folder ... has no dataset_info.json" warnings.

  TFDS logs one per lookup of an unprepared (or mocked) dataset; the
  DataError says the same in one line.
  """

  def filter(self, record: logging.LogRecord) -> bool:
    return "has no dataset_info.json" not in record.getMessage()


@contextlib.contextmanager
def _quiet_tfds():
  log = logging.getLogger("absl")
  drop = _DropNoInfoWarnings()
  log.addFilter(drop)
  try:
    yield
  finally:
    log.removeFilter(drop)


def open_split(name: str, split: str, data_dir: str):
  """The `tfds.data_source` of `split` of dataset `name`, or a DataError.

  The error is one line naming the dataset, the directory searched and the
  command that prepares it.
  """
  with _quiet_tfds():
    return _open_split(name, split, data_dir)


def _open_split(name: str, split: str, data_dir: str):
  return _open_tfds(name, SPECS[name].tfds_name, split, data_dir)


def tfds_name_of(name: str) -> str:
  """The TFDS dataset a TFDS-backed `config.data.name` reads
  (`cycle_gan:horse2zebra` -> `cycle_gan/horse2zebra`)."""
  if name.startswith("cycle_gan:"):
    return "cycle_gan/" + name.split(":", 1)[1]
  return SPECS[name].tfds_name


def open_tfds(name: str, tfds_name: str, split: str, data_dir: str):
  """`open_split` for TFDS dataset `tfds_name`, requested as `name`."""
  with _quiet_tfds():
    return _open_tfds(name, tfds_name, split, data_dir)


def _open_tfds(name: str, tfds_name: str, split: str, data_dir: str):
  try:
    return tfds.data_source(tfds_name, split=split, data_dir=data_dir,
                            download=False)
  except Exception as e:  # pylint: disable=broad-except
    # Asked only after a failure: `tfds.testing.mock_data` serves data that
    # `is_prepared` does not see.
    builder = tfds.builder(tfds_name, data_dir=data_dir)
    if not builder.is_prepared():
      raise DataError(
          f"dataset {name!r} (TFDS {tfds_name} {builder.version}) is not "
          f"prepared in {data_dir}; prepare it with: "
          f"{prepare_command(name, data_dir)}") from None
    # E.g. prepared as tfrecord, which only TensorFlow reads.
    reason = (str(e).splitlines() or [type(e).__name__])[0]
    raise DataError(
        f"dataset {name!r}: cannot read split {split!r} of "
        f"{builder.data_dir} ({reason}); prepare an array_record copy in "
        f"another directory with: {prepare_command(name, '<DIR>')}") from None


class ImageLoader:
  """Reads TFDS examples by id into a processed batch (see `images.process`)."""

  def __init__(self, source, spec: Spec, image_size: int, value_range):
    self._source = source
    self._spec = spec
    self._size = image_size
    self._range = tuple(value_range)

  def _process(self, images: np.ndarray, rng) -> np.ndarray:
    return images_lib.process(images, image_size=self._size,
                              value_range=self._range, rng=rng,
                              crop=self._spec.crop,
                              prebinarized=self._spec.prebinarized)

  def __call__(self, ids: np.ndarray, rng) -> Batch:
    # One batched read: array_record fetches the records in parallel.
    records = self._source.__getitems__(ids.tolist())
    batch = {"x": self._process(np.stack([r["image"] for r in records]), rng)}
    if self._spec.labels:
      batch["label"] = np.array([r["label"] for r in records], np.int32)
    return batch


class StackedLoader(ImageLoader):
  """Stacked MNIST: example i is digits triples[i] as the three channels."""

  def __init__(self, source, spec, image_size, value_range,
               triples: np.ndarray):
    super().__init__(source, spec, image_size, value_range)
    self._triples = triples

  def __call__(self, ids: np.ndarray, rng) -> Batch:
    triples = self._triples[ids]  # (B, 3)
    unique, inverse = np.unique(triples, return_inverse=True)
    records = self._source.__getitems__(unique.tolist())
    digits = np.stack([r["image"][..., 0] for r in records])  # (U, 28, 28)
    labels = np.array([r["label"] for r in records], np.int32)
    inverse = inverse.reshape(triples.shape)
    images = np.moveaxis(digits[inverse], 1, -1)  # (B, 28, 28, 3)
    return {"x": self._process(images, rng), "label": labels[inverse]}


def _loader(name: str, source, image_size: int, value_range,
            triple_seed: int) -> tuple[ImageLoader, int]:
  """The loader of one split and its number of examples."""
  spec = SPECS[name]
  if not spec.stacked:
    return ImageLoader(source, spec, image_size, value_range), len(source)
  # As many stacked examples as there are digits in the split.
  triples = np.random.default_rng(triple_seed).integers(
      0, len(source), size=(len(source), 3))
  return StackedLoader(source, spec, image_size, value_range, triples), len(
      source)


def _split_loader(name: str, split: str, image_size: int, value_range,
                  data_dir: str) -> tuple[pipeline.LoadFn, int]:
  """The loader of `split` and its size: from the copy prepared at
  `image_size` (`resized.py`) when there is one, else from TFDS's records."""
  source = open_split(name, split, data_dir)
  if not SPECS[name].stacked:
    prepared = resized.open_split(
        name, split, image_size, data_dir,
        lambda: fingerprint(name, data_dir), value_range)
    if prepared is not None:
      return prepared
  seed = _STACKED_TRAIN_SEED if split == "train" else _STACKED_EVAL_SEED
  return _loader(name, source, image_size, value_range, seed)


def tfds_dataset(cfg) -> pipeline.StreamingDataset:
  """The dataset `cfg.name` (a key of SPECS) configured by `config.data`."""
  name = cfg.name
  if name not in SPECS:
    raise ConfigError(f"config.data.name={name!r} is not one of: "
                      f"{', '.join(sorted(SPECS))}")
  spec = SPECS[name]
  image_size = int(cfg.get("image_size") or spec.native_size)
  if image_size <= 0:
    raise ConfigError(f"config.data.image_size={image_size} must be positive")
  value_range = tuple(float(v) for v in cfg.value_range)
  data_dir = resolve_data_dir(cfg.get("data_dir"))
  train_load, num_train = _split_loader(name, "train", image_size,
                                        value_range, data_dir)
  eval_load, num_eval = _split_loader(name, "test", image_size, value_range,
                                      data_dir)
  if spec.crop and not isinstance(train_load, resized.PreparedLoader):
    print(f"note: {name} is decoded, cropped and resized to {image_size} px "
          f"in every batch; to do that once: "
          f"{resized.command(name, image_size, data_dir)}", file=sys.stderr)
  extras = {"data_dir": data_dir}
  if spec.labels:
    extras["num_classes"] = 10
  if spec.stacked:
    extras["num_modes"] = 1000
  if spec.classifier:
    extras["classifier"] = spec.classifier
  info = DatasetInfo(name=name, kind="image",
                     example_shape=(image_size, image_size, spec.channels),
                     value_range=value_range, num_train=num_train,
                     num_eval=num_eval, extras=extras)
  # Binary pixels stay binary under dynamic binarization: skip the draw.
  random = bool(cfg.get("binarize", False)) and not spec.prebinarized
  return pipeline.StreamingDataset(
      info, train_load=train_load, eval_load=eval_load,
      options=pipeline.LoaderOptions.from_config(cfg), random=random)


# --- arrays for the digit classifier -----------------------------------------

def fingerprint(name: str, data_dir: str | None) -> str:
  """A short hash of the split sizes and a few records of dataset `name`.

  Tells copies of the data apart (e.g. `tfds.testing.mock_data` from the real
  MNIST) without reading them all: what the classifier cache is keyed on.
  """
  data_dir = resolve_data_dir(data_dir)
  h = hashlib.sha256(SPECS[name].tfds_name.encode())
  for split in ("train", "test"):
    source = open_split(name, split, data_dir)
    n = len(source)
    h.update(f"{split}:{n};".encode())
    for i in sorted({0, n // 2, n - 1} if n else set()):
      record = source[i]
      h.update(np.ascontiguousarray(record["image"]).tobytes())
      h.update(f"{record.get('label')};".encode())
  return h.hexdigest()[:12]


def split_batches(name: str, split: str, image_size: int,
                  data_dir: str | None, value_range,
                  chunk: int = 4096) -> Iterator[Batch]:
  """All of `split` in order, as batches of at most `chunk` examples.

  Processed exactly as the dataset's batches are (same crop and resize);
  stacked_mnist draws its triples as the dataset does.
  """
  load, num = _split_loader(name, split, image_size, value_range,
                            resolve_data_dir(data_dir))
  for i in range(0, num, chunk):
    yield load(np.arange(i, min(i + chunk, num)), None)


def labelled_arrays(name: str, split: str, image_size: int,
                    data_dir: str | None, value_range,
                    chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
  """All of `split` as (N, S, S, C) float32 in value_range and (N,) labels.

  Processed exactly as the dataset's batches are (same resize), in order.
  """
  spec = SPECS[name]
  if not spec.labels or spec.stacked:
    raise ValueError(f"dataset {name!r} has no single label per example")
  batches = list(split_batches(name, split, image_size, data_dir, value_range,
                               chunk))
  if not batches:
    raise DataError(f"dataset {name!r}: split {split!r} is empty")
  return (np.concatenate([b["x"] for b in batches]),
          np.concatenate([b["label"] for b in batches]))


def labelled_splits(name: str, image_size: int, data_dir: str | None,
                    value_range) -> tuple[tuple[np.ndarray, np.ndarray],
                                          tuple[np.ndarray, np.ndarray]]:
  """((x, y), (x_eval, y_eval)): the whole train and test splits."""
  return (labelled_arrays(name, "train", image_size, data_dir, value_range),
          labelled_arrays(name, "test", image_size, data_dir, value_range))
