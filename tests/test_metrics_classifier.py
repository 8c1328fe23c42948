"""The digit classifier (trained here, twice) and metrics that use it."""

import jax
import numpy as np
import pytest

from gen_jax.data import embedded
from gen_jax.metrics import classifier as C
from gen_jax.metrics import image_metrics, stacked_mode_metrics
from gen_jax.metrics.image_sets import image_features


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
  return tmp_path_factory.mktemp("gen_jax_cache")


@pytest.fixture(scope="module")
def clf(cache):
  return C.get_classifier("digits", 16, cache=cache)


@pytest.fixture(scope="module")
def held_out():
  return embedded._digit_split(16)[1]  # pylint: disable=protected-access


def _leaves(params):
  return jax.tree.leaves(params)


def test_held_out_accuracy(clf, held_out):
  x, y = held_out
  print(f"held-out accuracy {clf.accuracy:.4f}, "
        f"trained in {clf.meta['train_seconds']:.1f} s")
  assert clf.accuracy >= 0.95
  assert clf.accuracy == pytest.approx((clf.predict(x) == y).mean())
  assert clf.meta["num_eval"] == len(y) == 297


def test_value_range_and_shapes(clf, held_out):
  x, _ = held_out
  np.testing.assert_array_equal(clf.predict(2 * x - 1, value_range=(-1, 1)),
                                clf.predict(x[..., 0]))
  assert clf.logits(x).shape == (297, 10)
  assert clf.features(x).shape == (297, 128)
  with pytest.raises(ValueError, match="split channels"):
    clf.predict(np.zeros((2, 16, 16, 3)))
  with pytest.raises(ValueError, match="16x16"):
    clf.predict(np.zeros((2, 28, 28, 1)))


def test_cache_hit_does_not_retrain(clf, cache):
  runs = C.TRAINING_RUNS["count"]
  assert C.get_classifier("digits", 16, cache=cache) is clf  # in memory
  C._LOADED.clear()  # pylint: disable=protected-access
  from_disk = C.get_classifier("digits", 16, cache=cache)
  assert C.TRAINING_RUNS["count"] == runs
  assert from_disk is not clf and from_disk.accuracy == clf.accuracy
  for a, b in zip(_leaves(from_disk.params), _leaves(clf.params)):
    np.testing.assert_array_equal(a, b)


def test_training_is_deterministic(clf, tmp_path):
  runs = C.TRAINING_RUNS["count"]
  again = C.get_classifier("digits", 16, cache=tmp_path)
  assert C.TRAINING_RUNS["count"] == runs + 1
  assert again.accuracy == clf.accuracy
  for a, b in zip(_leaves(again.params), _leaves(clf.params)):
    np.testing.assert_array_equal(a, b)


def test_cache_dir_from_environment(monkeypatch, tmp_path):
  monkeypatch.setenv("GEN_JAX_CACHE", str(tmp_path))
  assert C.cache_dir() == tmp_path


def test_stacked_labels_real_digits(clf, held_out):
  x, y = held_out
  stacks, triples = embedded.stack_channels(x, y, 2000,
                                            np.random.default_rng(0))
  out = stacked_mode_metrics(2 * stacks - 1, clf, value_range=(-1, 1))
  expected = np.bincount(triples @ [100, 10, 1], minlength=1000)
  assert out["modes"] <= 1000
  # Per-channel accuracy a >= 0.95 mislabels a triple w.p. <= 1 - a^3.
  assert np.abs(out["counts"] - expected).sum() / 2 <= 0.15 * 2000


def test_image_metrics_rank_real_above_noise(clf, held_out):
  x_eval = held_out[0]
  x_train = embedded._digit_split(16)[0][0]  # pylint: disable=protected-access
  noise = np.random.default_rng(0).random(x_eval.shape).astype(np.float32)
  kw = dict(kid_subsets=5, kid_subset_size=200, ndb_bins=10)
  good = image_metrics(x_eval, x_train, clf, **kw)
  bad = image_metrics(noise, x_train, clf, **kw)
  assert set(good) == {"fid", "kid", "kid_std", "precision", "recall",
                       "ndb", "ndb_fraction"}
  assert good["fid"] < bad["fid"] and good["kid"] < bad["kid"]
  assert good["precision"] > 0.5 > bad["precision"]
  assert good["ndb"] < bad["ndb"]
  assert image_features(np.concatenate([x_eval] * 3, -1)[:5],
                        clf).shape == (5, 384)


def test_trains_on_other_sizes_given_arrays():
  # MNIST-shaped arrays (28 x 28): one short epoch, to check the plumbing.
  rng = np.random.default_rng(0)
  x = rng.random((64, 28, 28, 1)).astype(np.float32)
  y = rng.integers(0, 10, 64)
  params, accuracy = C.train_classifier(
      x, y, x[:8], y[:8], config=C.TrainConfig(epochs=1, batch_size=32))
  clf = C.Classifier(params, accuracy=accuracy)
  assert clf.predict(x[:3]).shape == (3,) and 0 <= accuracy <= 1
