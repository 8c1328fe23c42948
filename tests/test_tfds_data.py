"""TFDS-backed datasets under `tfds.testing.mock_data`, without TensorFlow."""

import importlib.util
import json
import os
import subprocess
import sys

import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from conftest import REPO, load_config
from gen_jax import data
from gen_jax.data import images, tfds_data
from gen_jax.data.testing import mock_tfds
from gen_jax.errors import ConfigError, DataError

NAMES = sorted(tfds_data.SPECS)
NUM_EXAMPLES = 64
CHANNELS = {"mnist": 1, "fashion_mnist": 1, "binarized_mnist": 1,
            "cifar10": 3, "celeb_a": 3, "stacked_mnist": 3}
NATIVE = {"mnist": 28, "fashion_mnist": 28, "binarized_mnist": 28,
          "stacked_mnist": 28, "cifar10": 32, "celeb_a": 178}


def data_config(name, **overrides):
  c = ml_collections.ConfigDict(dict(
      name=name, batch_size=16, image_size=32, value_range=(-1.0, 1.0),
      binarize=False, data_dir="", num_threads=2, prefetch=2, num_workers=0))
  c.update(overrides)
  return c


@pytest.fixture
def mocked():
  with mock_tfds(num_examples=NUM_EXAMPLES):
    yield


def stream(ds, seed=0, local=16, index=0, count=1):
  return ds.train_stream(seed=seed, local_batch_size=local,
                         process_index=index, process_count=count)


def take(s, n):
  return [next(s) for _ in range(n)]


def same(a, b):
  return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_every_name_is_registered():
  for name in NAMES + ["folder"]:
    assert name in data.DATASETS
  with pytest.raises(ConfigError, match="stacked_mnist"):
    data.get_dataset(data_config("mnist_typo"))


@pytest.mark.parametrize("name", NAMES)
def test_batches_have_the_promised_shape_dtype_and_range(mocked, name):
  ds = data.get_dataset(data_config(name, value_range=(0.0, 1.0)))
  assert ds.info.example_shape == (32, 32, CHANNELS[name])
  assert ds.info.num_train == ds.info.num_eval == NUM_EXAMPLES
  batch = next(stream(ds))
  x = batch["x"]
  assert x.shape == (16, 32, 32, CHANNELS[name]) and x.dtype == np.float32
  assert 0.0 <= x.min() and x.max() <= 1.0 and x.std() > 0.01
  labels = name in ("mnist", "fashion_mnist", "cifar10", "stacked_mnist")
  assert ("label" in batch) == labels
  if labels:
    shape = (16, 3) if name == "stacked_mnist" else (16,)
    assert batch["label"].shape == shape and batch["label"].dtype == np.int32
    assert 0 <= batch["label"].min() and batch["label"].max() < 10
  assert "tensorflow" not in sys.modules


@pytest.mark.parametrize("name,size", [("mnist", 16), ("mnist", 28),
                                       ("mnist", 32), ("celeb_a", 32)])
def test_pixels_are_the_tfds_images_resized_and_scaled(mocked, name, size):
  ds = data.get_dataset(data_config(name, image_size=size))
  x = next(ds.eval_batches(local_batch_size=4, process_index=0,
                           process_count=1))["x"]
  source = tfds.data_source(name, split="test")
  for i in range(4):
    raw = source[i]["image"]
    if name == "celeb_a":  # 218x178: centre 178x178 square, resized in uint8
      square = Image.fromarray(raw[20:198]).resize((size, size),
                                                   Image.BILINEAR)
      expected = np.asarray(square, np.float32) / 255
    else:
      expected = np.asarray(Image.fromarray(
          raw[..., 0].astype(np.float32) / 255, mode="F").resize(
              (size, size), Image.BILINEAR))[..., None]
    np.testing.assert_allclose(x[i], 2 * expected - 1, atol=1e-5)


def test_binarize_gives_two_values_drawn_per_batch(mocked):
  ds = data.get_dataset(data_config("mnist", binarize=True))
  a, b = take(stream(ds), 2)
  assert set(np.unique(a["x"])) == {-1.0, 1.0}
  assert not np.array_equal(a["x"], b["x"])
  # binarized_mnist stays binary through the resize to 32.
  ds = data.get_dataset(data_config("binarized_mnist"))
  assert set(np.unique(next(stream(ds))["x"])) == {-1.0, 1.0}


def test_stream_is_deterministic_and_reshuffled_each_epoch(mocked):
  ds = data.get_dataset(data_config("cifar10"))
  per_epoch = NUM_EXAMPLES // 16
  first = take(stream(ds, seed=1), 2 * per_epoch)
  again = take(stream(ds, seed=1), 2 * per_epoch)
  assert all(same(a, b) for a, b in zip(first, again))
  other = next(stream(ds, seed=2))
  assert not np.array_equal(other["x"], first[0]["x"])

  def rows(batches):
    return np.concatenate([b["x"].reshape(16, -1) for b in batches])
  epoch1, epoch2 = rows(first[:per_epoch]), rows(first[per_epoch:])
  # Each epoch holds every example once, in another order.
  assert len(np.unique(epoch1, axis=0)) == NUM_EXAMPLES
  np.testing.assert_array_equal(np.unique(epoch1, axis=0),
                                np.unique(epoch2, axis=0))
  assert not np.array_equal(epoch1, epoch2)


def test_processes_read_disjoint_halves_of_the_same_global_batches(mocked):
  ds = data.get_dataset(data_config("mnist"))
  whole = take(stream(ds, local=16), 3)
  halves = [take(stream(ds, local=8, index=i, count=2), 3) for i in range(2)]
  for step in range(3):
    h0 = halves[0][step]["x"].reshape(8, -1)
    h1 = halves[1][step]["x"].reshape(8, -1)
    assert not (h0[:, None] == h1[None]).all(-1).any()  # no shared example
    np.testing.assert_array_equal(
        np.unique(np.concatenate([h0, h1]), axis=0),
        np.unique(whole[step]["x"].reshape(16, -1), axis=0))


def test_state_round_trips_through_orbax_and_resumes_exactly(mocked,
                                                             tmp_path):
  ds = data.get_dataset(data_config("stacked_mnist", binarize=True))
  reference = take(stream(ds, seed=5), 9)
  interrupted = stream(ds, seed=5)
  take(interrupted, 6)  # past the first epoch of 4 batches
  checkpointer = ocp.Checkpointer(ocp.JsonCheckpointHandler())
  checkpointer.save(tmp_path / "data",
                    args=ocp.args.JsonSave(interrupted.get_state()))
  state = checkpointer.restore(tmp_path / "data", args=ocp.args.JsonRestore())
  json.dumps(state)
  resumed = stream(ds, seed=5)
  resumed.set_state(state)
  assert all(same(a, b) for a, b in zip(reference[6:], take(resumed, 3)))


def test_eval_batches_cover_the_test_split_once_padded(mocked):
  ds = data.get_dataset(data_config("fashion_mnist"))
  batches = list(ds.eval_batches(local_batch_size=12, process_index=0,
                                 process_count=1))
  assert len(batches) == 6  # ceil(64 / 12)
  assert [b["mask"].sum() for b in batches] == [12] * 5 + [4]
  assert np.all(batches[-1]["x"][4:] == 0)
  shards = [list(ds.eval_batches(local_batch_size=6, process_index=i,
                                 process_count=2)) for i in range(2)]
  assert len(shards[0]) == len(shards[1]) == 6
  for whole, a, b in zip(batches, *shards):
    np.testing.assert_array_equal(whole["x"],
                                  np.concatenate([a["x"], b["x"]]))
    np.testing.assert_array_equal(whole["mask"],
                                  np.concatenate([a["mask"], b["mask"]]))


def test_stacked_channels_are_digits_with_their_labels(mocked):
  cfg = dict(image_size=28, value_range=(0.0, 1.0))
  digits = data.get_dataset(data_config("mnist", **cfg))
  label_of = {}
  for b in digits.eval_batches(local_batch_size=16, process_index=0,
                               process_count=1):
    for x, y in zip(b["x"], b["label"]):
      label_of[x.tobytes()] = y
  batch = next(stream(data.get_dataset(data_config("stacked_mnist", **cfg))))
  for x, labels in zip(batch["x"], batch["label"]):
    for c in range(3):
      assert label_of[np.ascontiguousarray(x[..., c:c + 1]).tobytes()] == \
          labels[c]


def test_unprepared_dataset_is_one_line_naming_dir_and_command(tmp_path):
  with pytest.raises(DataError) as e:
    data.get_dataset(data_config("cifar10", data_dir=str(tmp_path)))
  message = str(e.value)
  assert "\n" not in message and e.value.exit_code == 2
  assert "'cifar10'" in message and str(tmp_path) in message
  assert f"python -m gen_jax.prepare_data cifar10 --data_dir={tmp_path}" in \
      message
  assert "tensorflow" not in sys.modules


def test_data_dir_falls_back_to_tfds_data_dir(tmp_path, monkeypatch):
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
  with pytest.raises(DataError, match=f"stacked_mnist --data_dir={tmp_path}"):
    data.get_dataset(data_config("stacked_mnist", data_dir=""))


def test_prepare_data_names_and_needs_tensorflow(tmp_path):
  from gen_jax import prepare_data
  with pytest.raises(ConfigError, match="folder datasets need no preparing"):
    prepare_data.prepare("folder:/x", str(tmp_path))
  if importlib.util.find_spec("tensorflow") is None:
    with pytest.raises(DataError, match=r"gen-jax\[prepare\]"):
      prepare_data.prepare("mnist", str(tmp_path))
  assert not os.listdir(tmp_path)


@pytest.mark.parametrize("shape,size", [((28, 28), 32), ((28, 28), 16),
                                        ((40, 30), 7)])
def test_batched_resize_matches_pil_bilinear(shape, size):
  x = np.random.default_rng(0).random((2, *shape, 3), dtype=np.float32)
  expected = np.stack([np.stack([np.asarray(
      Image.fromarray(x[b, ..., c], mode="F").resize((size, size),
                                                     Image.BILINEAR))
      for c in range(3)], -1) for b in range(2)])
  np.testing.assert_allclose(images.resize(x, size), expected, atol=1e-5)


@pytest.mark.parametrize("config,arg", [("dcgan", "mnist,small"),
                                        ("vae", "binarized_mnist,small")])
def test_training_runs_on_mock_tfds(mocked, tmp_path, config, arg):
  from gen_jax import train
  c = load_config(config, arg)
  final = train.train_and_evaluate(c, str(tmp_path))
  assert final["step"] == c.train.num_steps
  assert all(np.isfinite(v) for v in final.values())
  # GANs on MNIST are scored with the MNIST classifier (trained on mock data).
  assert ("eval/fid" in final) == (config == "dcgan")
  assert "tensorflow" not in sys.modules


def test_cli_reports_unprepared_dataset_in_one_line_exit_2(tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "gen_jax.main",
       "--config=configs/dcgan.py:mnist,small", f"--workdir={tmp_path}/run",
       f"--config.data.data_dir={tmp_path}"],
      capture_output=True, text=True, cwd=REPO, timeout=300)
  assert result.returncode == 2, result.stderr
  lines = result.stderr.strip().splitlines()
  assert lines == [f"error: dataset 'mnist' (TFDS mnist 3.0.1) is not prepared "
                   f"in {tmp_path}; prepare it with: python -m "
                   f"gen_jax.prepare_data mnist --data_dir={tmp_path}"]
