"""The MNIST digit classifier: trained from the TFDS data on first use, cached,
and used by the GAN's evaluation of `mnist` and `stacked_mnist`."""

import dataclasses

import ml_collections
import numpy as np
import pytest

from conftest import load_config
from gen_jax import data
from gen_jax.data import embedded, tfds_data
from gen_jax.data.testing import mock_tfds, mock_tfds_arrays
from gen_jax.errors import DataError
from gen_jax.metrics import classifier as C


def _leaves_equal(a, b) -> bool:
  import jax
  return all(np.array_equal(x, y)
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _digits_as_mnist():
  """The scikit-learn digits standing in for MNIST (uint8 28x28x1): learnable,
  unlike mock_data's random pixels, and with splits of different sizes."""
  (x, y), (x_eval, y_eval) = embedded._digit_split(28)  # pylint: disable=protected-access
  u8 = lambda a: np.round(a * 255).astype(np.uint8)
  return {"train": {"image": u8(x), "label": y},
          "test": {"image": u8(x_eval), "label": y_eval}}


def test_trains_on_the_train_split_and_scores_the_test_split(tmp_path):
  with mock_tfds_arrays(_digits_as_mnist()):
    clf = C.get_classifier("mnist", 16, cache=tmp_path)
    x_test, y_test = tfds_data.labelled_arrays("mnist", "test", 16, None,
                                               C.INPUT_RANGE)
    # The classifier sees MNIST as the `mnist` dataset serves it, mapped from
    # the run's value range to the classifier's.
    ds = data.get_dataset(ml_collections.ConfigDict(dict(
        name="mnist", batch_size=16, image_size=16, value_range=(-1.0, 1.0),
        binarize=False, data_dir="", num_threads=0, prefetch=2,
        num_workers=0)))
    batch = next(ds.eval_batches(local_batch_size=16, process_index=0,
                                 process_count=1))
  np.testing.assert_allclose((batch["x"] + 1) / 2, x_test[:16], atol=1e-6)
  assert clf.meta["num_train"] == 1500 and clf.meta["num_eval"] == 297
  assert len(y_test) == 297 and x_test.shape == (297, 16, 16, 1)
  assert 0.0 <= x_test.min() and x_test.max() <= 1.0
  assert clf.meta["config"] == dataclasses.asdict(C.MNIST_CONFIG)
  print(f"held-out accuracy {clf.accuracy:.3f} after "
        f"{clf.meta['train_seconds']:.1f} s")
  assert clf.accuracy == pytest.approx((clf.predict(x_test) == y_test).mean())
  assert clf.accuracy > 0.5  # 10 classes: chance is 0.1
  np.testing.assert_array_equal(clf.predict(batch["x"], value_range=(-1, 1)),
                                clf.predict(x_test[:16]))


def test_cached_per_data_and_size_and_reloaded_without_training(tmp_path):
  with mock_tfds(num_examples=64):
    first = C.get_classifier("mnist", 8, cache=tmp_path)
    runs = C.TRAINING_RUNS["count"]
    assert C.get_classifier("mnist", 8, cache=tmp_path) is first
    C._LOADED.clear()  # pylint: disable=protected-access
    again = C.get_classifier("mnist", 8, cache=tmp_path)
    assert C.TRAINING_RUNS["count"] == runs
    assert again is not first and again.accuracy == first.accuracy
    assert _leaves_equal(again.params, first.params)
    C.get_classifier("mnist", 12, cache=tmp_path)  # another size
    assert C.TRAINING_RUNS["count"] == runs + 1
  with mock_tfds(num_examples=96):  # other data, same name and size
    other = C.get_classifier("mnist", 8, cache=tmp_path)
    assert C.TRAINING_RUNS["count"] == runs + 2
    assert other.meta["num_train"] == 96 and first.meta["num_train"] == 64
  assert other.meta["fingerprint"] != first.meta["fingerprint"]
  files = sorted(p.name for p in (tmp_path / "classifiers").iterdir())
  assert len(files) == 3 and all(f.startswith("mnist_") for f in files)
  assert any(first.meta["fingerprint"] in f for f in files)
  # The bundled digits need no fingerprint: their cache name is unchanged.
  path = C._cache_path(tmp_path, "digits", 16, "")  # pylint: disable=protected-access
  assert path.name == "digits_16_v1.msgpack"


def test_unprepared_mnist_is_a_one_line_data_error(tmp_path):
  with pytest.raises(DataError, match="prepare_data mnist") as e:
    C.get_classifier("mnist", 16, data_dir=str(tmp_path), cache=tmp_path)
  assert "\n" not in str(e.value)


def test_too_few_examples_for_one_batch_is_an_error():
  x = np.zeros((10, 8, 8, 1), np.float32)
  y = np.zeros(10, np.int32)
  with pytest.raises(ValueError, match="fewer than one batch"):
    C.train_classifier(x, y, x, y, config=C.TrainConfig(batch_size=16))


def test_mnist_datasets_name_their_classifier():
  def extras(name):
    with mock_tfds(num_examples=8):
      return data.get_dataset(ml_collections.ConfigDict(dict(
          name=name, batch_size=4, image_size=28, value_range=(-1.0, 1.0),
          binarize=False, data_dir="", num_threads=0, prefetch=2,
          num_workers=0))).info.extras
  mnist, stacked = extras("mnist"), extras("stacked_mnist")
  assert mnist["classifier"] == stacked["classifier"] == "mnist"
  assert "num_modes" not in mnist and stacked["num_modes"] == 1000
  assert mnist["data_dir"] == tfds_data.resolve_data_dir(None)
  assert "classifier" not in extras("fashion_mnist")


def test_gan_evaluation_on_mock_stacked_mnist(tmp_path, monkeypatch):
  from gen_jax import train
  monkeypatch.setenv("GEN_JAX_CACHE", str(tmp_path / "cache"))
  c = load_config("dcgan", "stacked_mnist,small")
  c.data.image_size = 16  # smaller models compile faster
  with mock_tfds(num_examples=64):
    final = train.train_and_evaluate(c, str(tmp_path / "run"))
  for k in ("fid", "kid", "precision", "recall", "ndb", "kl"):
    assert np.isfinite(final[f"eval/{k}"]), k
  assert final["eval/fid"] >= 0 and final["eval/kl"] >= 0
  assert 1 <= final["eval/modes"] <= 1000
  assert list((tmp_path / "cache" / "classifiers").glob("mnist_16_v1_*"))
