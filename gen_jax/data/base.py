"""The contract between datasets and the training loop.

A dataset hands the loop *process-local* numpy batches; the loop assembles them
into global arrays on the device mesh (`jax.make_array_from_process_local_data`).
Every stream is deterministic given its seed and can save and restore its
position, so that a resumed run sees exactly the batches an uninterrupted run
would have seen.

Batches are dicts of numpy arrays: `x` (local_batch, *example_shape) float32 in
`info.value_range`, optionally `label` (local_batch, ...) int32, and for eval
batches `mask` (local_batch,) float32 (1 for a real example, 0 for padding).

Image-to-image (translation) datasets add `cond` (local_batch, h, w, c), the
source-domain image, in the same value range, to training and eval batches;
`x` is the target-domain image. Their `info.extras` hold `'cond_shape'`
(h, w, c) and `'paired'`: True when `cond[i]` is the source of `x[i]`
(Pix2Pix, super-resolution), False when the two are drawn independently with
no correspondence (CycleGAN's unpaired domains: `cond` from domain A, `x`
from domain B). Trainers test `'cond_shape' in info.extras` for a
translation dataset.
"""

import dataclasses
from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np

Batch = dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """Static facts about a dataset that models and metrics need.

  Attributes:
    name: the name it was requested by (`config.data.name`).
    kind: 'image' (example_shape (H, W, C)) or 'points' (example_shape (D,)).
    example_shape: shape of one example.
    value_range: (low, high) of `x` values.
    num_train: number of training examples (over all processes).
    num_eval: number of held-out examples (0 if there is no eval split).
    extras: dataset-specific facts, e.g. 'modes' (K, D) and 'mode_std' for
      Gaussian mixtures, 'num_label_values' for labelled data, 'paired' and
      'cond_shape' for image-to-image data (module docstring).
  """
  name: str
  kind: str
  example_shape: tuple[int, ...]
  value_range: tuple[float, float]
  num_train: int
  num_eval: int = 0
  extras: dict[str, Any] = dataclasses.field(default_factory=dict)


class Stream(Protocol):
  """An endless iterator of process-local training batches."""

  def __iter__(self) -> Iterator[Batch]: ...

  def __next__(self) -> Batch: ...

  def get_state(self) -> dict[str, Any]:
    """JSON-serialisable position, saved in every checkpoint."""
    ...

  def set_state(self, state: dict[str, Any]) -> None:
    """Moves the stream to a position returned by `get_state`."""
    ...


class Dataset(Protocol):
  info: DatasetInfo

  def train_stream(self, *, seed: int, local_batch_size: int,
                   process_index: int, process_count: int) -> Stream:
    """Endless shuffled training batches, reshuffled each epoch from `seed`.

    Each `next()` returns this process's `local_batch_size` share of one global
    batch of `local_batch_size * process_count` examples; the processes' shares
    are disjoint.
    """
    ...

  def eval_batches(self, *, local_batch_size: int, process_index: int,
                   process_count: int) -> Iterator[Batch]:
    """One deterministic pass over the held-out split, padded with `mask`."""
    ...


def pad_batch(batch: Batch, size: int) -> Batch:
  """Pads every array of `batch` to `size` rows and adds a `mask`."""
  n = len(next(iter(batch.values())))
  out = {k: np.concatenate([v, np.zeros((size - n, *v.shape[1:]), v.dtype)])
         for k, v in batch.items()}
  mask = np.zeros((size,), np.float32)
  mask[:n] = 1.0
  out["mask"] = mask
  return out


class ArrayStream:
  """Epoch-shuffled batches from in-memory arrays; state is the batch count.

  The global permutation of epoch `e` is `default_rng([seed, e])`'s; global
  batch rows are sorted (locality) before each process takes its contiguous
  slice, and a `transform` (e.g. dynamic binarization) is applied to the whole
  global batch before slicing, so that the processes' slices put together are
  exactly the single-process batch, row for row (rows are paired with noise
  by position, so order matters as much as content). `stream_id` (an int)
  gives a stream of its own permutations for the same seed (the two domains
  of an unpaired translation dataset); None keeps `[seed, e]`.
  """

  def __init__(self, arrays: Batch, *, seed: int, local_batch_size: int,
               process_index: int, process_count: int, transform=None,
               stream_id: int | None = None):
    self._arrays = arrays
    self._n = len(next(iter(arrays.values())))
    self._seed = seed
    self._local = local_batch_size
    self._global = local_batch_size * process_count
    self._offset = process_index * local_batch_size
    self._transform = transform
    self._salt = () if stream_id is None else (1 << 21, stream_id)
    self._batches_per_epoch = self._n // self._global
    if self._batches_per_epoch == 0:
      raise ValueError(f"global batch {self._global} exceeds the {self._n} "
                       "training examples")
    self._count = 0
    self._perm_epoch = -1
    self._perm = None

  def __iter__(self):
    return self

  def __next__(self) -> Batch:
    epoch, i = divmod(self._count, self._batches_per_epoch)
    if epoch != self._perm_epoch:
      self._perm = np.random.default_rng(
          [self._seed, epoch, *self._salt]).permutation(self._n)
      self._perm_epoch = epoch
    rows = np.sort(self._perm[i * self._global:(i + 1) * self._global])
    if self._transform is None:
      rows = rows[self._offset:self._offset + self._local]
    batch = {k: v[rows] for k, v in self._arrays.items()}
    if self._transform is not None:
      batch = self._transform(batch, np.random.default_rng(
          [self._seed, 1 << 20, self._count]))
      batch = {k: v[self._offset:self._offset + self._local]
               for k, v in batch.items()}
    self._count += 1
    return batch

  def get_state(self) -> dict[str, Any]:
    return {"batches": self._count}

  def set_state(self, state: dict[str, Any]) -> None:
    self._count = int(state["batches"])


def array_eval_batches(arrays: Batch, *, local_batch_size: int,
                       process_index: int, process_count: int):
  """Deterministic pass over `arrays`; the last global batch is padded."""
  n = len(next(iter(arrays.values())))
  global_batch = local_batch_size * process_count
  for start in range(0, n, global_batch):
    lo = min(n, start + process_index * local_batch_size)
    hi = min(n, lo + local_batch_size)
    yield pad_batch({k: v[lo:hi] for k, v in arrays.items()}, local_batch_size)
