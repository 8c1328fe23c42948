"""mixture_metrics on hand-built samples (VEEGAN / PacGAN definitions)."""

import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.data import embedded
from gen_jax.metrics import mixture_metrics

RING = embedded.ring_modes()
STD = 0.01


def _hand_samples():
  # 3 exactly at mode 0, one 2 std from mode 1 (HQ), one 5 std from mode 2
  # (not HQ), one halfway between the origin and mode 3 (not HQ).
  return np.stack([RING[0], RING[0], RING[0],
                   RING[1] + [2 * STD, 0], RING[2] + [0, 5 * STD],
                   0.5 * RING[3]])


def test_hand_built_counts_all_samples():
  out = mixture_metrics(_hand_samples(), RING, STD)
  np.testing.assert_array_equal(out["counts"], [3, 1, 1, 1, 0, 0, 0, 0])
  np.testing.assert_array_equal(out["hq_counts"], [3, 1, 0, 0, 0, 0, 0, 0])
  assert out["modes"] == 2
  assert out["hq"] == pytest.approx(100 * 4 / 6)
  # p = (1/2, 1/6, 1/6, 1/6): sum p log(8 p).
  expected = 0.5 * np.log(4) + 0.5 * np.log(8 / 6)
  assert out["reverse_kl"] == pytest.approx(expected)
  assert out["hq_only"] is False


def test_hand_built_hq_only():
  out = mixture_metrics(_hand_samples(), RING, STD, hq_only=True)
  # HQ histogram (3, 1) -> p = (3/4, 1/4).
  assert out["reverse_kl"] == pytest.approx(0.75 * np.log(6) + 0.25 * np.log(2))
  assert out["modes"] == 2


def test_hq_threshold_is_strict_three_std():
  inside = RING[4] + np.array([0.0, 2.999 * STD])
  outside = RING[5] * (1 + 3.001 * STD)  # radially out; |RING[5]| = 1
  out = mixture_metrics(np.stack([inside, outside]), RING, STD)
  np.testing.assert_array_equal(out["hq_counts"][4:6], [1, 0])
  assert out["modes"] == 1 and out["hq"] == 50.0


def test_uniform_and_collapsed():
  grid = embedded.grid_modes()
  uniform = np.repeat(grid, 100, axis=0)  # 2,500 samples, 100 per mode
  out = mixture_metrics(jnp.asarray(uniform), grid, 0.05)
  assert (out["modes"], out["hq"]) == (25, 100.0)
  assert out["reverse_kl"] == pytest.approx(0.0, abs=1e-12)
  collapsed = mixture_metrics(np.repeat(grid[:1], 2500, 0), grid, 0.05)
  assert collapsed["modes"] == 1
  assert collapsed["reverse_kl"] == pytest.approx(np.log(25))


def test_true_mixture_matches_chi_distribution():
  # For the data itself, P(HQ) = P(chi_2 < 3) = 1 - exp(-9/2) = 98.89 %.
  grid = embedded.grid_modes()
  x, _ = embedded.sample_mixture(grid, 0.05, 2500, np.random.default_rng(0))
  out = mixture_metrics(x, grid, 0.05)
  assert out["modes"] == 25
  assert out["hq"] == pytest.approx(100 * (1 - np.exp(-4.5)), abs=0.7)
  assert out["reverse_kl"] < 0.02


def test_no_hq_samples_and_bad_shapes():
  far = mixture_metrics(np.full((4, 2), 10.0), RING, STD, hq_only=True)
  assert far["modes"] == 0 and far["hq"] == 0.0
  assert np.isnan(far["reverse_kl"])
  with pytest.raises(ValueError):
    mixture_metrics(np.zeros((4, 3)), RING, STD)
