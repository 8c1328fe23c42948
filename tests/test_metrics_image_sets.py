"""Set metrics against NumPy/SciPy references and hand-computed answers."""

import numpy as np
import pytest
import scipy.linalg

from gen_jax.metrics import image_sets as S


def _correlated(rng, n, d, shift=0.0):
  return rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) + shift


def test_frechet_matches_scipy_sqrtm():
  rng = np.random.default_rng(0)
  x, y = _correlated(rng, 300, 6), _correlated(rng, 200, 6, shift=0.5)
  s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
  diff = x.mean(0) - y.mean(0)
  ref = (diff @ diff + np.trace(s1) + np.trace(s2)
         - 2 * np.trace(scipy.linalg.sqrtm(s1 @ s2)).real)
  assert S.frechet_distance(x, y) == pytest.approx(ref, rel=1e-8)


def test_frechet_self_and_1d_closed_form():
  rng = np.random.default_rng(1)
  x = _correlated(rng, 100, 8)
  assert abs(S.frechet_distance(x, x)) < 1e-9 * np.trace(np.cov(x.T))
  a, b = rng.normal(1.0, 2.0, (500, 1)), rng.normal(-1.0, 0.5, (400, 1))
  closed = ((a.mean() - b.mean()) ** 2
            + (a.std(ddof=1) - b.std(ddof=1)) ** 2)
  assert S.frechet_distance(a, b) == pytest.approx(closed, rel=1e-10)


def test_frechet_rank_deficient_is_finite():
  rng = np.random.default_rng(2)  # fewer examples than dimensions
  fd = S.frechet_distance(rng.standard_normal((10, 30)),
                          rng.standard_normal((12, 30)))
  assert np.isfinite(fd) and fd > 0


def test_mmd2_unbiased_matches_loop():
  rng = np.random.default_rng(3)
  x, y = rng.standard_normal((12, 4)), rng.standard_normal((9, 4)) + 0.3
  k = lambda a, b: (float(np.dot(a, b)) / 4 + 1) ** 3  # noqa: E731
  m, n = len(x), len(y)
  kxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
  kyy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j)
  kxy = sum(k(x[i], y[j]) for i in range(m) for j in range(n))
  ref = kxx / (m * (m - 1)) + kyy / (n * (n - 1)) - 2 * kxy / (m * n)
  assert S.mmd2_unbiased(x, y) == pytest.approx(ref, rel=1e-10)


def test_kid_subsets():
  rng = np.random.default_rng(4)
  x, y = rng.standard_normal((50, 3)), rng.standard_normal((50, 3))
  assert S.kernel_distance(x, y) == (S.mmd2_unbiased(x, y), 0.0)
  big_x, big_y = rng.standard_normal((400, 3)), rng.standard_normal((300, 3))
  same = S.kernel_distance(big_x, big_y, num_subsets=10, subset_size=100)
  assert same == S.kernel_distance(big_x, big_y, num_subsets=10,
                                   subset_size=100)  # seeded
  far = S.kernel_distance(big_x, big_y + 2, num_subsets=10, subset_size=100)
  assert abs(same[0]) < 3 * same[1] + 1e-3 and far[0] > 10 * abs(same[0])


def test_knn_radii_and_precision_by_hand():
  real = np.array([[0.0], [1.0], [3.0], [7.0]])
  np.testing.assert_allclose(S.knn_radii_sq(real, k=1), [1, 1, 4, 16])
  np.testing.assert_allclose(S.knn_radii_sq(real, k=2), [9, 4, 9, 36])
  # k=2 balls: [-3, 3], [-1, 3], [0, 6], [1, 13].
  inside = S.coverage(np.array([[-2.9], [3.5], [13.0], [20.0]]), real,
                      S.knn_radii_sq(real, k=2))
  np.testing.assert_array_equal(inside, [True, True, True, False])


def test_precision_recall_constructed_sets():
  rng = np.random.default_rng(5)
  a = rng.standard_normal((60, 5))
  b = rng.standard_normal((40, 5)) + 100.0
  real = np.concatenate([a, b])
  assert S.precision_recall(real, real) == (1.0, 1.0)
  assert S.precision_recall(real + 1000.0, real) == (0.0, 0.0)
  # Samples are the real cluster a only: all precise, 60 of 100 real recalled.
  assert S.precision_recall(a, real) == (1.0, 0.6)


def _three_clusters(rng, sizes):
  centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
  return np.concatenate([c + 0.1 * rng.standard_normal((n, 2))
                         for c, n in zip(centres, sizes)])


def test_ndb_known_answer():
  rng = np.random.default_rng(6)
  real = _three_clusters(rng, (100, 100, 100))
  assert S.ndb(_three_clusters(rng, (100, 100, 100)), real,
               num_bins=3)["ndb"] == 0
  # Proportions 130/100/70 of 300 vs 1/3 each: pooled z = -2.519, 0, 2.718,
  # two-sided p = 0.01177, 1, 0.00657 (by hand, pooled standard error).
  gen = _three_clusters(rng, (130, 100, 70))
  out = S.ndb(gen, real, num_bins=3)
  np.testing.assert_allclose(np.sort(out["p_values"]),
                             [0.0065692, 0.0117681, 1.0], rtol=1e-4)
  assert (out["ndb"], out["ndb_fraction"]) == (2, 2 / 3)
  assert S.ndb(gen, real, num_bins=3, alpha=0.01)["ndb"] == 1
  # JS of (1/3, 1/3, 1/3) and (13/30, 1/3, 7/30), by hand with m = mean.
  p, q = np.full(3, 1 / 3), np.array([13, 10, 7]) / 30
  m = (p + q) / 2
  jsd = 0.5 * (p @ np.log(p / m) + q @ np.log(q / m))
  assert out["jsd"] == pytest.approx(jsd)
  assert S.ndb(_three_clusters(rng, (300, 0, 0)), real, num_bins=3)["ndb"] == 3
