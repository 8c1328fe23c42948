"""Test helpers: TFDS datasets mocked without TensorFlow or files.

    with mock_tfds(num_examples=64):
      ds = get_dataset(config.data)   # random but deterministic mnist, ...
    with mock_tfds_arrays({"train": {"image": x, "label": y}, "test": ...}):
      ds = get_dataset(config.data)   # these arrays as every TFDS dataset
"""

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from unittest import mock

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.testing import mocking


def _getitems(record_keys, generator, serialized=False):
  del serialized
  return [generator[k] for k in record_keys]


@contextlib.contextmanager
def mock_tfds(num_examples: int = 64) -> Iterator[None]:
  """`tfds.testing.mock_data` whose data sources also read in batches.

  TFDS 4.9.10's mock installs `__getitems__` (the batched read that
  `tfds_data` uses) as a plain attribute of a MagicMock, so it is called
  without `self` and fails with "missing 1 required positional argument:
  'record_keys'"; `__getitem__` works because MagicMock binds it. This
  replaces the mock's `_getitems` with an unbound one. The default policy
  (AUTO) finds the metadata folders TFDS ships for these datasets; train and
  test splits hold the same `num_examples` examples, pixels 0..254 and labels
  0..num_classes-1.
  """
  with mock.patch.object(mocking, "_getitems", _getitems), \
      tfds.testing.mock_data(num_examples=num_examples):
    yield



class _ArraySource(Sequence):
  """A random-access data source over arrays of equal length (one per
  feature), with the batched read of TFDS's array_record sources."""

  def __init__(self, features: Mapping[str, np.ndarray]):
    self._features = dict(features)
    self._len = len(next(iter(self._features.values())))

  def __len__(self) -> int:
    return self._len

  def __getitem__(self, i):
    if not -self._len <= i < self._len:
      raise IndexError(i)
    return {k: v[i] for k, v in self._features.items()}

  def __getitems__(self, keys):
    return [self[k] for k in keys]


@contextlib.contextmanager
def mock_tfds_arrays(
    splits: Mapping[str, Mapping[str, np.ndarray]]) -> Iterator[None]:
  """`tfds.data_source` of any dataset serves the given arrays.

  Args:
    splits: split name -> feature name -> (N, ...) array, e.g.
      {"train": {"image": uint8 (N, 28, 28, 1), "label": int (N,)}, ...}.
  """
  def as_data_source(builder, split=None, **kwargs):
    del builder, kwargs
    if split is None:
      return {s: _ArraySource(f) for s, f in splits.items()}
    return _ArraySource(splits[split])

  with tfds.testing.mock_data(as_data_source_fn=as_data_source):
    yield
