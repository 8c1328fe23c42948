"""The embedded datasets: protocols, ranges, determinism, sharding, resume."""

import ml_collections
import numpy as np
import pytest

from gen_jax import data
from gen_jax.data import embedded


def data_config(name, **kw):
  c = ml_collections.ConfigDict(dict(name=name, batch_size=64, image_size=16,
                                     value_range=(-1.0, 1.0), binarize=False,
                                     data_dir=""))
  c.update(kw)
  return c


def stream(ds, seed=0, local=32, index=0, count=1):
  return ds.train_stream(seed=seed, local_batch_size=local,
                         process_index=index, process_count=count)


def test_ring_is_the_pacgan_ring():
  ds = data.get_dataset(data_config("ring"))
  modes = ds.info.extras["modes"]
  np.testing.assert_allclose(np.linalg.norm(modes, axis=1), 1.0, atol=1e-6)
  angles = np.sort(np.mod(np.arctan2(modes[:, 1], modes[:, 0]), 2 * np.pi))
  np.testing.assert_allclose(angles, 2 * np.pi * np.arange(8) / 8, atol=1e-6)
  assert ds.info.extras["mode_std"] == 0.01
  assert ds.info.num_train == 100_000 and ds.info.num_eval == 2_500
  x = next(stream(ds, local=4096))
  dist = np.linalg.norm(x["x"] - modes[x["label"]], axis=1)
  # The distance to a 2D Gaussian's mean has mean std*sqrt(pi/2).
  np.testing.assert_allclose(dist.mean(), 0.01 * np.sqrt(np.pi / 2), rtol=0.05)
  assert np.bincount(x["label"], minlength=8).min() > 4096 / 8 * 0.8


def test_grid_is_the_pacgan_grid():
  ds = data.get_dataset(data_config("grid"))
  modes = ds.info.extras["modes"]
  assert sorted(map(tuple, modes.tolist())) == [
      (float(a), float(b)) for a in (-4, -2, 0, 2, 4) for b in (-4, -2, 0, 2, 4)]
  assert ds.info.extras["mode_std"] == 0.05
  x = next(stream(ds, local=4096))
  np.testing.assert_allclose(np.std(x["x"] - modes[x["label"]]), 0.05,
                             rtol=0.05)


@pytest.mark.parametrize("name,shape,channels", [
    ("digits", (16, 16, 1), 1), ("stacked_digits", (16, 16, 3), 3)])
def test_digit_images(name, shape, channels):
  ds = data.get_dataset(data_config(name))
  assert ds.info.example_shape == shape
  batch = next(stream(ds))
  assert batch["x"].shape == (32, *shape) and batch["x"].dtype == np.float32
  assert batch["x"].min() >= -1.0 and batch["x"].max() <= 1.0
  assert batch["x"].min() == -1.0 and batch["x"].max() > 0.9
  if name == "stacked_digits":
    assert batch["label"].shape == (32, 3)


def test_digits_are_the_scikit_learn_digits_with_a_held_out_split():
  ds = data.get_dataset(data_config("digits", image_size=8,
                                    value_range=(0.0, 1.0)))
  from sklearn.datasets import load_digits
  ref = load_digits().images / 16.0
  train = ds._train["x"][..., 0]
  evals = ds._eval["x"][..., 0]
  assert len(train) + len(evals) == 1797 and len(evals) == 297
  # Every example is one of scikit-learn's, and no example is in both splits.
  ref_keys = {r.tobytes() for r in ref.astype(np.float32)}
  assert all(t.tobytes() in ref_keys for t in train)
  assert not {t.tobytes() for t in train} & {e.tobytes() for e in evals}


def test_digits_read_without_importing_scikit_learn():
  # The data file read directly is load_digits, bitwise; and it is read
  # without the seconds that importing scikit-learn costs a run.
  import os
  import subprocess
  import sys
  from sklearn.datasets import load_digits
  images, labels = embedded.sklearn_digits()
  ref = load_digits()
  assert images.dtype == ref.images.dtype and images.shape == ref.images.shape
  assert images.tobytes() == ref.images.tobytes()
  np.testing.assert_array_equal(labels, ref.target)
  code = ("import sys; from gen_jax.data import embedded; "
          "embedded.digit_images(16); assert 'sklearn' not in sys.modules")
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  subprocess.run([sys.executable, "-c", code], check=True, cwd=repo)


def test_stacked_digits_labels_match_channels():
  ds = data.get_dataset(data_config("stacked_digits", image_size=8,
                                    value_range=(0.0, 1.0)))
  images, labels = embedded.digit_images(8)
  lookup = {im[..., 0].tobytes(): l for im, l in zip(images, labels)}
  batch = next(stream(ds, local=16))
  for x, y in zip(batch["x"], batch["label"]):
    assert [lookup[x[..., c].tobytes()] for c in range(3)] == list(y)


def test_streams_are_deterministic_and_seeded():
  ds = data.get_dataset(data_config("digits"))
  a, b, c = stream(ds, seed=1), stream(ds, seed=1), stream(ds, seed=2)
  for _ in range(3):
    xa, xb, xc = next(a)["x"], next(b)["x"], next(c)["x"]
    np.testing.assert_array_equal(xa, xb)
    assert not np.array_equal(xa, xc)


def test_every_epoch_is_a_permutation_reshuffled():
  ds = data.get_dataset(data_config("ring"))
  s = stream(ds, local=20_000)
  epoch1 = np.concatenate([next(s)["x"] for _ in range(5)])
  epoch2 = np.concatenate([next(s)["x"] for _ in range(5)])
  key = lambda a: np.sort(a.view(np.complex64).ravel())
  np.testing.assert_array_equal(key(epoch1), key(ds._train["x"]))
  np.testing.assert_array_equal(key(epoch2), key(ds._train["x"]))
  assert not np.array_equal(epoch1, epoch2)


def test_processes_get_disjoint_shares_of_the_same_global_batch():
  ds = data.get_dataset(data_config("digits"))
  whole = next(stream(ds, local=64))
  p0 = next(stream(ds, local=32, index=0, count=2))
  p1 = next(stream(ds, local=32, index=1, count=2))
  rows = lambda b: {x.tobytes() for x in b["x"]}
  assert not rows(p0) & rows(p1)
  assert rows(p0) | rows(p1) == rows(whole)


def test_stream_state_resumes_the_identical_sequence():
  ds = data.get_dataset(data_config("digits", binarize=True,
                                    value_range=(0.0, 1.0)))
  s = stream(ds)
  for _ in range(50):  # past the first epoch boundary (1500 / 32 = 46)
    next(s)
  state = s.get_state()
  expected = [next(s)["x"] for _ in range(3)]
  resumed = stream(ds)
  resumed.set_state(state)
  for e in expected:
    np.testing.assert_array_equal(next(resumed)["x"], e)


def test_dynamic_binarization_is_binary_with_the_pixel_mean():
  ds = data.get_dataset(data_config("digits", binarize=True,
                                    value_range=(0.0, 1.0)))
  plain = data.get_dataset(data_config("digits", value_range=(0.0, 1.0)))
  xs = np.concatenate([next(s)["x"] for s in [stream(ds, local=1500)]])
  ref = next(stream(plain, local=1500))["x"]
  assert set(np.unique(xs)) == {0.0, 1.0}
  np.testing.assert_allclose(xs.mean(), ref.mean(), rtol=0.02)


def test_eval_batches_are_padded_with_a_mask():
  ds = data.get_dataset(data_config("digits"))
  batches = list(ds.eval_batches(local_batch_size=128, process_index=0,
                                 process_count=1))
  assert [b["x"].shape[0] for b in batches] == [128, 128, 128]
  assert sum(b["mask"].sum() for b in batches) == 297
