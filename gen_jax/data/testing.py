"""Test helpers: TFDS datasets mocked without TensorFlow or files.

    with mock_tfds(num_examples=64):
      ds = get_dataset(config.data)   # random but deterministic mnist, ...
"""

import contextlib
from collections.abc import Iterator
from unittest import mock

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

