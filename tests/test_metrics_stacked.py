"""stacked_mode_metrics with a stub classifier whose labels are known."""

import numpy as np
import pytest

from gen_jax.metrics import stacked_mode_metrics
from gen_jax.metrics.stacked import channel_labels


class _MeanClassifier:
  """Labels an image round(9 * mean intensity in [0, 1])."""

  def predict(self, x, value_range=(0.0, 1.0)):
    lo, hi = value_range
    return np.rint(9 * (x.mean((1, 2, 3)) - lo) / (hi - lo)).astype(np.int32)


def _images(triples, value_range=(0.0, 1.0)):
  lo, hi = value_range
  t = np.asarray(triples, np.float32)[:, None, None, :] / 9  # (N, 1, 1, 3)
  return np.broadcast_to(lo + (hi - lo) * t, (len(t), 4, 4, 3))


def test_channel_order_and_labels():
  labels = channel_labels(_images([[1, 2, 3], [9, 0, 5]]), _MeanClassifier())
  np.testing.assert_array_equal(labels, [[1, 2, 3], [9, 0, 5]])
  out = stacked_mode_metrics(_images([[1, 2, 3]]), _MeanClassifier())
  assert out["counts"][123] == 1 and out["modes"] == 1


def test_all_modes_once_and_collapsed():
  every = np.stack(np.unravel_index(np.arange(1000), (10, 10, 10)), 1)
  out = stacked_mode_metrics(_images(every, (-1, 1)), _MeanClassifier(),
                             value_range=(-1, 1))
  assert out["modes"] == 1000 and out["kl"] == pytest.approx(0.0, abs=1e-12)
  one = stacked_mode_metrics(_images([[4, 4, 4]] * 7), _MeanClassifier())
  assert one["modes"] == 1 and one["kl"] == pytest.approx(np.log(1000))


def test_two_modes_kl_by_hand():
  out = stacked_mode_metrics(_images([[0, 0, 1]] * 3 + [[7, 7, 7]]),
                             _MeanClassifier())
  assert out["modes"] == 2
  # p = (3/4, 1/4): 3/4 log(750) + 1/4 log(250).
  assert out["kl"] == pytest.approx(0.75 * np.log(750) + 0.25 * np.log(250))


def test_rejects_non_stacked():
  with pytest.raises(ValueError):
    stacked_mode_metrics(np.zeros((2, 4, 4, 1)), _MeanClassifier())
  with pytest.raises(ValueError):
    stacked_mode_metrics(np.zeros((2, 4, 4)), _MeanClassifier())
