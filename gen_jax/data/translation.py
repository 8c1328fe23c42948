"""Image-to-image tasks built from the bundled digits: no download needed.

A translation dataset's batches are `{'x': target-domain image (B, H, W, C),
'cond': source-domain image (B, h, w, c)}` (eval batches add `mask`), both in
`config.data.value_range`; `info.extras['paired']` says whether `cond[i]`
corresponds to `x[i]`, `info.extras['cond_shape']` is (h, w, c)
(`data/base.py`).

- `digit_edges` (paired, Pix2Pix): the edge map of a digit (thresholded
  Sobel magnitude) -> the digit.
- `digit_thicken` (paired, Pix2Pix): a digit -> the same digit thickened (a
  3x3 grey dilation) and colour-inverted.
- `digit_superres` (paired, SRGAN): the digit downsampled (bicubic,
  antialiased) by 2 -> the digit at `config.data.image_size`;
  `digit_superres:4` downsamples by 4 (use image_size 32 so the input is
  8x8).
- `digit_domains[:STYLE]` (unpaired, CycleGAN): A (`cond`) = digits, B
  (`x`) = other digits in another style: `thicken` (the default: thickened
  by a 3x3 grey dilation and colour-inverted, dark thick strokes on light)
  or `invert` (colour-inverted only). A and B come from disjoint halves of
  the training (and held-out) digits, and each is shuffled with its own
  permutation, so no `x` is the image of its `cond`.
  The held-out batches carry the digits' labels (`label` of B, `cond_label`
  of A) for the `cycle_labels` metric; the training batches do not.

The held-out split is the digits' (297 examples; for `digit_domains` its
two halves, 148 pairs of unrelated A and B images).
"""

import numpy as np
from PIL import Image
from scipy import ndimage

from gen_jax.data.base import ArrayStream, DatasetInfo, array_eval_batches
from gen_jax.data.embedded import InMemoryDataset, _digit_split, _scale
from gen_jax.errors import DataError

SUPERRES_SCALES = (2, 4)
TASKS = ("digit_edges", "digit_thicken", "digit_superres", "digit_domains")


def edges(images: np.ndarray) -> np.ndarray:
  """(N, S, S, 1) in [0, 1] -> binary edge maps: Sobel gradient magnitude
  above 0.4 of each image's maximum (an outline of the stroke)."""
  im = images[..., 0]
  gx = ndimage.sobel(im, axis=2, mode="constant")
  gy = ndimage.sobel(im, axis=1, mode="constant")
  mag = np.hypot(gx, gy)
  top = mag.reshape(len(mag), -1).max(1).reshape(-1, 1, 1)
  return (mag > 0.4 * np.maximum(top, 1e-6)).astype(np.float32)[..., None]


def thicken_invert(images: np.ndarray) -> np.ndarray:
  """(N, S, S, C) in [0, 1] -> 1 - (3x3 grey dilation): a thicker stroke,
  dark on light."""
  thick = ndimage.grey_dilation(images, size=(1, 3, 3, 1))
  return (1.0 - thick).astype(np.float32)


def downsample(images: np.ndarray, factor: int) -> np.ndarray:
  """(N, S, S, C) -> (N, S/f, S/f, C): PIL's bicubic resize (antialiased),
  per channel, clipped to [0, 1]."""
  n, s, _, c = images.shape
  size = s // factor
  out = np.stack([np.stack([
      np.asarray(Image.fromarray(im[..., ch]).resize((size, size),
                                                     Image.BICUBIC))
      for ch in range(c)], -1) for im in images])
  return np.clip(out, 0.0, 1.0).astype(np.float32)


def _info(name, x, cond, num_eval, value_range, paired, **extras):
  return DatasetInfo(
      name=name, kind="image", example_shape=tuple(x.shape[1:]),
      value_range=tuple(value_range), num_train=len(x), num_eval=num_eval,
      extras={"paired": paired, "cond_shape": tuple(cond.shape[1:]),
              **extras})


def _paired(name: str, cfg, source, target_fn=lambda x: x, **extras):
  """A paired task: x = target_fn(digit), cond = source(digit)."""
  (x, _), (x_eval, _) = _digit_split(cfg.image_size)
  vr = tuple(cfg.value_range)
  train = {"x": _scale(target_fn(x), vr), "cond": _scale(source(x), vr)}
  eval_ = {"x": _scale(target_fn(x_eval), vr),
           "cond": _scale(source(x_eval), vr)}
  info = _info(name, train["x"], train["cond"], len(x_eval), vr, True,
               **extras)
  return InMemoryDataset(info, train, eval_)


def digit_edges(cfg) -> InMemoryDataset:
  return _paired("digit_edges", cfg, edges)


def digit_thicken(cfg) -> InMemoryDataset:
  return _paired("digit_thicken", cfg, lambda x: x, thicken_invert)


def superres_scale(name: str) -> int:
  """'digit_superres' -> 2, 'digit_superres:4' -> 4."""
  _, _, arg = name.partition(":")
  if arg == "":
    return 2
  if arg not in {str(s) for s in SUPERRES_SCALES}:
    raise DataError(f"config.data.name={name!r}: the scale after the colon "
                    f"must be one of {', '.join(map(str, SUPERRES_SCALES))}")
  return int(arg)


def digit_superres(cfg) -> InMemoryDataset:
  scale = superres_scale(cfg.name)
  if cfg.image_size % scale or cfg.image_size // scale < 4:
    raise DataError(f"config.data.name={cfg.name!r} downsamples by {scale}: "
                    f"config.data.image_size={cfg.image_size} must be a "
                    f"multiple of {scale} with at least 4 px left (e.g. "
                    f"{8 * scale})")
  return _paired(cfg.name, cfg, lambda x: downsample(x, scale), scale=scale)


class UnpairedStream:
  """Two independently shuffled streams: `x` from one set of images, `cond`
  from another (each epoch-shuffled with its own permutation)."""

  def __init__(self, x: np.ndarray, cond: np.ndarray, **kwargs):
    self._x = ArrayStream({"x": x}, stream_id=0, **kwargs)
    self._cond = ArrayStream({"cond": cond}, stream_id=1, **kwargs)

  @classmethod
  def of(cls, x_stream, cond_stream) -> "UnpairedStream":
    """From two streams yielding {'x'} and {'cond'} batches."""
    self = cls.__new__(cls)
    self._x, self._cond = x_stream, cond_stream
    return self

  def __iter__(self):
    return self

  def __next__(self):
    return {**next(self._x), **next(self._cond)}

  def get_state(self):
    return {"x": self._x.get_state(), "cond": self._cond.get_state()}

  def set_state(self, state):
    self._x.set_state(state["x"])
    self._cond.set_state(state["cond"])


class UnpairedDataset:
  """Domain B images (`x`) and domain A images (`cond`), unrelated."""

  def __init__(self, info: DatasetInfo, train: dict, eval_: dict):
    self.info = info
    self._train = train
    self._eval = eval_

  def arrays(self, split: str) -> dict:
    return {"train": self._train, "test": self._eval}[split]

  def train_stream(self, *, seed, local_batch_size, process_index,
                   process_count):
    return UnpairedStream(self._train["x"], self._train["cond"], seed=seed,
                          local_batch_size=local_batch_size,
                          process_index=process_index,
                          process_count=process_count)

  def eval_batches(self, *, local_batch_size, process_index, process_count):
    return array_eval_batches(self._eval, local_batch_size=local_batch_size,
                              process_index=process_index,
                              process_count=process_count)


# `digit_domains[:STYLE]`: domain B's look, a function of a digit in [0, 1].
DOMAIN_STYLES = {"thicken": thicken_invert,
                 "invert": lambda x: (1.0 - x).astype(np.float32)}
# The classifier (`metrics/classifier.py`'s CLASSIFIER_DATA) that reads the
# digit of a domain B image of each style.
STYLE_CLASSIFIERS = {"thicken": "digits_thickened",
                     "invert": "digits_inverted"}


def domain_style(name: str) -> str:
  """'digit_domains' -> 'thicken', 'digit_domains:invert' -> 'invert'."""
  _, _, arg = name.partition(":")
  style = arg or "thicken"
  if style not in DOMAIN_STYLES:
    raise DataError(f"config.data.name={name!r}: the style after the colon "
                    f"must be one of {', '.join(DOMAIN_STYLES)}")
  return style


def digit_domains(cfg) -> UnpairedDataset:
  style = domain_style(cfg.name)
  to_b = DOMAIN_STYLES[style]
  (x, y), (x_eval, y_eval) = _digit_split(cfg.image_size)
  vr = tuple(cfg.value_range)

  def halves(images, labels, seed):
    perm = np.random.default_rng(seed).permutation(len(images))
    h = len(images) // 2
    a, b = perm[:h], perm[h:2 * h]
    return (images[a], labels[a]), (images[b], labels[b])

  (a, _), (b, _) = halves(x, y, 11)
  (a_eval, ya_eval), (b_eval, yb_eval) = halves(x_eval, y_eval, 12)
  train = {"x": _scale(to_b(b), vr), "cond": _scale(a, vr)}
  # Held-out labels (never trained on) let evaluators check that a
  # translation keeps the digit: 'label' of the B images, 'cond_label' of
  # the A images.
  eval_ = {"x": _scale(to_b(b_eval), vr), "cond": _scale(a_eval, vr),
           "label": yb_eval, "cond_label": ya_eval}
  # The digit classifier's features give domain FIDs of translations; a
  # classifier of each domain reads the digits of translations into it.
  info = _info(cfg.name, train["x"], train["cond"], len(a_eval), vr,
               False, classifier="digits", classifier_a="digits",
               classifier_b=STYLE_CLASSIFIERS[style], num_classes=10)
  return UnpairedDataset(info, train, eval_)
