"""A small per-channel digit classifier for mode counting and domain FID.

Stacked-MNIST mode counts (VEEGAN, PacGAN) label each channel with a pretrained
MNIST classifier; domain FID / KID / precision-recall use its penultimate layer
instead of Inception features. The project trains its own, deterministically:

- `train_classifier(x, y, x_eval, y_eval)` trains on any (N, S, S, 1) arrays in
  [0, 1] (the embedded digits, or MNIST given as arrays);
- `get_classifier(name, image_size, data_dir=...)` trains it once on the data
  registered as `name` in `CLASSIFIER_DATA` and caches the weights and the
  held-out accuracy in `$GEN_JAX_CACHE` (default `~/.cache/gen_jax`):
  'digits', the embedded digits (split as `gen_jax.data.embedded._digit_split`);
  'mnist', TFDS MNIST's train split (held out: its test split), read from
  `data_dir` as the `mnist` dataset reads it.
  'digits_thickened', 'digits_inverted': the embedded digits in the styles
  of `digit_domains`' domain B (`data/translation.py`), which read the digit
  of a translation into B (the `cycle_labels` metric).

A new training set is one function `(image_size, data_dir) -> TrainingData`
registered in `CLASSIFIER_DATA`. The cache file is named by the classifier, the
image size, `VERSION` and the data's fingerprint, so that a classifier trained
on other data (e.g. mock MNIST in tests) is never loaded for these. Bump
`VERSION` when the model or the training recipe changes, so that stale caches
are not loaded.
"""

import dataclasses
import json
import math
import os
import pathlib
import sys
import tempfile
import time
from collections.abc import Callable

import flax.linen as nn
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gen_jax.registry import Registry

VERSION = 1
INPUT_RANGE = (0.0, 1.0)  # what the network sees; other ranges are mapped

class DigitCNN(nn.Module):
  """conv32-pool-conv64-pool-dense(features)-dense(classes), for S >= 4.

  Returns (logits (N, num_classes), features (N, num_features)), the features
  being the ReLU activations of the penultimate layer.
  """
  num_classes: int = 10
  num_features: int = 128

  @nn.compact
  def __call__(self, x):
    x = nn.relu(nn.Conv(32, (3, 3))(x))
    x = nn.avg_pool(x, (2, 2), strides=(2, 2))
    x = nn.relu(nn.Conv(64, (3, 3))(x))
    x = nn.avg_pool(x, (2, 2), strides=(2, 2))
    x = x.reshape(x.shape[0], -1)
    features = nn.relu(nn.Dense(self.num_features)(x))
    return nn.Dense(self.num_classes)(features), features


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  seed: int = 0
  epochs: int = 30
  batch_size: int = 64
  learning_rate: float = 2e-3
  num_features: int = 128


Splits = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclasses.dataclass(frozen=True)
class TrainingData:
  """What one classifier is trained on, and how.

  Attributes:
    fingerprint: identifies the data without loading it all (part of the
      cache file name); '' for data that ship with the code.
    load: () -> ((x, y), (x_eval, y_eval)), images (N, S, S, 1) in
      `INPUT_RANGE` and int labels; called only when the cache misses.
    config: the training recipe.
  """
  fingerprint: str
  load: Callable[[], Splits]
  config: TrainConfig = TrainConfig()


CLASSIFIER_DATA: Registry = Registry("classifier name")


@CLASSIFIER_DATA.register("digits")
def _digits_data(image_size: int, data_dir: str | None) -> TrainingData:
  del data_dir  # bundled with scikit-learn
  from gen_jax.data import embedded
  split = embedded._digit_split  # pylint: disable=protected-access
  return TrainingData("", lambda: split(image_size))


def _styled_digits(style: str):
  """Training data of a classifier of the embedded digits in a
  `digit_domains` style (domain B's digits), split as the digits."""
  def data(image_size: int, data_dir: str | None) -> TrainingData:
    del data_dir
    from gen_jax.data import embedded, translation
    to_b = translation.DOMAIN_STYLES[style]

    def load():
      split = embedded._digit_split(image_size)  # pylint: disable=protected-access
      return tuple((to_b(x), y) for x, y in split)
    return TrainingData(style, load)
  return data


CLASSIFIER_DATA.add("digits_inverted", _styled_digits("invert"))
CLASSIFIER_DATA.add("digits_thickened", _styled_digits("thicken"))


# All 60,000 training digits for 2 epochs (1,874 steps of 64): about a minute
# at 28x28 on a 2-core CPU, where the digits' 30 epochs would take 15.
MNIST_CONFIG = TrainConfig(epochs=2)


@CLASSIFIER_DATA.register("mnist")
def _mnist_data(image_size: int, data_dir: str | None) -> TrainingData:
  from gen_jax.data import tfds_data
  return TrainingData(
      tfds_data.fingerprint("mnist", data_dir),
      lambda: tfds_data.labelled_splits("mnist", image_size, data_dir,
                                        INPUT_RANGE),
      MNIST_CONFIG)


def train_classifier(x, y, x_eval, y_eval, *, num_classes: int = 10,
                     config: TrainConfig = TrainConfig()
                     ) -> tuple[dict, float]:
  """Trains `DigitCNN` with Adam and cross-entropy; deterministic on CPU.

  Args:
    x: (N, S, S, 1) training images in [0, 1]; y: (N,) int labels.
    x_eval, y_eval: the held-out split, for the reported accuracy.
    num_classes: number of labels.
    config: seed, epochs, batch size, learning rate, feature width.

  Returns:
    (params, held-out accuracy in [0, 1]).
  """
  x = jnp.asarray(x, jnp.float32)
  y = jnp.asarray(y, jnp.int32)
  model = DigitCNN(num_classes, config.num_features)
  params = model.init(jax.random.PRNGKey(config.seed), x[:1])["params"]
  tx = optax.adam(config.learning_rate)
  # The batch order is drawn on the host so the run does not depend on the
  # device's random-number implementation; remainders are dropped per epoch.
  rng = np.random.default_rng(config.seed)
  per_epoch = len(x) // config.batch_size
  if per_epoch == 0:
    raise ValueError(f"{len(x)} training examples are fewer than one batch "
                     f"of {config.batch_size}")
  order = np.concatenate([
      rng.permutation(len(x))[:per_epoch * config.batch_size]
      for _ in range(config.epochs)]).reshape(-1, config.batch_size)

  def loss_fn(p, xb, yb):
    logits, _ = model.apply({"params": p}, xb)
    return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

  @jax.jit
  def step(p, opt_state, x, y, idx):  # data as arguments, not constants
    grads = jax.grad(loss_fn)(p, x[idx], y[idx])
    updates, opt_state = tx.update(grads, opt_state, p)
    return optax.apply_updates(p, updates), opt_state

  # A Python loop over a jitted step: on XLA:CPU the same step inside
  # `lax.scan` ran about 40x slower (convolutions in a while loop).
  opt_state = tx.init(params)
  for idx in order:
    params, opt_state = step(params, opt_state, x, y, idx)
  params = jax.device_get(params)
  clf = Classifier(params, accuracy=float("nan"))
  accuracy = float((clf.predict(x_eval) == np.asarray(y_eval)).mean())
  return params, accuracy


def split_channels(images) -> np.ndarray:
  """(N, H, W, C) -> (N * C, H, W, 1): each channel an example, N-major."""
  x = np.asarray(images, np.float32)
  if x.ndim != 4:
    raise ValueError(f"expected (N, H, W, C) images, got {x.shape}")
  n, h, w, c = x.shape
  return x.transpose(0, 3, 1, 2).reshape(n * c, h, w, 1)


class Classifier:
  """A trained `DigitCNN` applied per single-channel image.

  Every method takes x of shape (N, S, S, 1) or (N, S, S), with values in
  `value_range` (default [0, 1]); they are mapped linearly to [0, 1].
  """

  def __init__(self, params, *, accuracy: float, meta: dict | None = None):
    self.params = params
    self.accuracy = accuracy  # held-out accuracy in [0, 1]
    self.meta = dict(meta or {})
    num_features, num_classes = params["Dense_1"]["kernel"].shape
    self._model = DigitCNN(num_classes, num_features)
    # Two 2x2 poolings before a 64-channel flatten: (S // 4)^2 * 64 inputs.
    self._pooled = math.isqrt(params["Dense_0"]["kernel"].shape[0] // 64)
    self._apply = jax.jit(lambda p, x: self._model.apply({"params": p}, x))

  def _run(self, x, value_range, batch_size: int = 512):
    x = np.asarray(x, np.float32)
    if x.ndim == 3:
      x = x[..., None]
    if (x.ndim != 4 or x.shape[-1] != 1
        or x.shape[1] // 4 != self._pooled or x.shape[2] // 4 != self._pooled):
      size = 4 * self._pooled
      raise ValueError(f"expected ({size}x{size}) images of shape (N, {size}, "
                       f"{size}, 1) or (N, {size}, {size}), got {x.shape}; "
                       "split channels before classifying")
    lo, hi = value_range
    x = (x - lo) / (hi - lo)
    logits, feats = [], []
    for start in range(0, len(x), batch_size):  # fixed shape: one compile
      chunk = x[start:start + batch_size]
      pad = batch_size - len(chunk)
      out = self._apply(self.params, np.pad(chunk, ((0, pad),) + ((0, 0),) * 3))
      logits.append(np.asarray(out[0])[:len(chunk)])
      feats.append(np.asarray(out[1])[:len(chunk)])
    if not logits:
      return (np.zeros((0, self._model.num_classes), np.float32),
              np.zeros((0, self._model.num_features), np.float32))
    return np.concatenate(logits), np.concatenate(feats)

  def logits(self, x, value_range=INPUT_RANGE) -> np.ndarray:
    """(N, num_classes) unnormalised log-probabilities."""
    return self._run(x, value_range)[0]

  def predict(self, x, value_range=INPUT_RANGE) -> np.ndarray:
    """(N,) int32 predicted labels."""
    return self.logits(x, value_range).argmax(-1).astype(np.int32)

  def features(self, x, value_range=INPUT_RANGE) -> np.ndarray:
    """(N, num_features) penultimate-layer activations (for domain FID)."""
    return self._run(x, value_range)[1]


# --- cache --------------------------------------------------------------------

_LOADED: dict[tuple, Classifier] = {}
TRAINING_RUNS = {"count": 0}  # how many trainings this process has done


def cache_dir() -> pathlib.Path:
  default = pathlib.Path.home() / ".cache" / "gen_jax"
  return pathlib.Path(os.environ.get("GEN_JAX_CACHE", default))


def _cache_path(root: pathlib.Path, name: str, image_size: int,
                fingerprint: str) -> pathlib.Path:
  suffix = f"_{fingerprint}" if fingerprint else ""
  return root / "classifiers" / f"{name}_{image_size}_v{VERSION}{suffix}.msgpack"


def _save(path: pathlib.Path, params, accuracy: float, meta: dict) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  blob = flax.serialization.msgpack_serialize({
      "params": params, "accuracy": accuracy, "meta": json.dumps(meta)})
  # Write then rename, so a concurrent reader never sees half a file.
  fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
  with os.fdopen(fd, "wb") as f:
    f.write(blob)
  os.replace(tmp, path)


def _load(path: pathlib.Path) -> tuple[dict, float, dict]:
  state = flax.serialization.msgpack_restore(path.read_bytes())
  return state["params"], float(state["accuracy"]), json.loads(state["meta"])


def get_classifier(name: str = "digits", image_size: int = 16, *,
                   data_dir: str | None = None,
                   cache: str | os.PathLike | None = None) -> Classifier:
  """The classifier for dataset `name` at `image_size`, trained on first use.

  Looks in this process, then in `cache` (default `cache_dir()`), and trains
  and saves only when neither has it. `data_dir` is where TFDS data are read
  ('mnist'; resolved as `config.data.data_dir`); the embedded digits ignore it.
  """
  data = CLASSIFIER_DATA.get(name)(image_size, data_dir)
  root = pathlib.Path(cache) if cache is not None else cache_dir()
  path = _cache_path(root, name, image_size, data.fingerprint)
  key = (str(path),)
  if key in _LOADED:
    return _LOADED[key]
  if path.exists():
    params, accuracy, meta = _load(path)
  else:
    print(f"training the {name!r} digit classifier at {image_size}x"
          f"{image_size} for evaluation metrics (once; cached in {path})",
          file=sys.stderr)
    (x, y), (x_eval, y_eval) = data.load()
    start = time.perf_counter()
    params, accuracy = train_classifier(x, y, x_eval, y_eval,
                                        config=data.config)
    TRAINING_RUNS["count"] += 1
    meta = {"name": name, "image_size": image_size, "version": VERSION,
            "fingerprint": data.fingerprint,
            "train_seconds": time.perf_counter() - start,
            "num_train": len(x), "num_eval": len(x_eval),
            "config": dataclasses.asdict(data.config)}
    _save(path, params, accuracy, meta)
  clf = Classifier(params, accuracy=accuracy, meta=meta)
  _LOADED[key] = clf
  return clf
