"""Datasets prepared at the training resolution (`gen_jax.data.resized`) give
bitwise the batches of the unprepared pipeline, and a copy of other data is
never read."""

import os

import ml_collections
import numpy as np
import pytest

from gen_jax import data, prepare_data
from gen_jax.data import resized
from gen_jax.data.testing import mock_tfds
from gen_jax.errors import ConfigError


def data_config(name, data_dir, **overrides):
  c = ml_collections.ConfigDict(dict(
      name=name, batch_size=8, image_size=16, value_range=(-1.0, 1.0),
      binarize=False, data_dir=str(data_dir), num_threads=1, prefetch=2,
      num_workers=0))
  c.update(overrides)
  return c


def batches(ds, n=3):
  s = ds.train_stream(seed=3, local_batch_size=8, process_index=0,
                      process_count=1)
  out = [next(s) for _ in range(n)]
  evals = list(ds.eval_batches(local_batch_size=8, process_index=0,
                               process_count=1))
  return out + evals


def assert_same(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    assert x.keys() == y.keys()
    for k in x:
      assert x[k].dtype == y[k].dtype, k
      np.testing.assert_array_equal(x[k], y[k], err_msg=k)


@pytest.mark.parametrize("name,overrides", [
    ("celeb_a", {}),                      # crop + PIL resize: stored uint8
    ("mnist", {"binarize": True}),        # matrix resize: float32, then draws
])
def test_prepared_batches_are_the_unprepared_ones(tmp_path, capsys, name,
                                                  overrides):
  cfg = data_config(name, tmp_path, **overrides)
  with mock_tfds(num_examples=24):
    before = batches(data.get_dataset(cfg))
    hint = capsys.readouterr().err
    path = resized.write(name, 16, str(tmp_path))
    after_ds = data.get_dataset(cfg)
    after = batches(after_ds)
  assert os.path.exists(os.path.join(path, "train_x.npy"))
  assert isinstance(after_ds._train_load, resized.PreparedLoader)
  if name == "celeb_a":  # the unprepared run says how to prepare it
    assert resized.command("celeb_a", 16, str(tmp_path)) in hint
    assert np.load(os.path.join(path, "train_x.npy")).dtype == np.uint8
  assert_same(before, after)


def test_a_copy_of_other_data_is_ignored(tmp_path, capsys):
  cfg = data_config("cifar10", tmp_path)
  with mock_tfds(num_examples=24):
    resized.write("cifar10", 16, str(tmp_path))
  with mock_tfds(num_examples=32):  # other data in the same place
    ds = data.get_dataset(cfg)
  assert not isinstance(ds._train_load, resized.PreparedLoader)
  assert ds.info.num_train == 32
  assert "ignoring" in capsys.readouterr().err


def test_prepare_resized_refuses_bad_names_and_sizes(tmp_path):
  with pytest.raises(ConfigError, match="stacked_mnist.*is not one of"):
    prepare_data.prepare_resized("stacked_mnist", 16, str(tmp_path))
  with pytest.raises(ConfigError, match="--image_size=0 must be positive"):
    prepare_data.prepare_resized("mnist", 0, str(tmp_path))
