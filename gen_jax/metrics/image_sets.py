"""Sample-set metrics that need no Inception download.

Each metric compares two sets of vectors: rows are examples (N, D). Computed in
the penultimate-layer space of the project's digit classifier they give a
"domain" FID / KID / precision-recall, comparable only with numbers computed
with the same classifier (same `classifier.VERSION`), never with Inception ones.

- Frechet distance (Heusel et al. 2017, FID): ||mu_x - mu_y||^2
  + tr(S_x + S_y - 2 (S_x S_y)^{1/2}), sample covariances with ddof=1.
- KID (Binkowski et al. 2018): unbiased MMD^2 with the cubic polynomial kernel
  k(a, b) = (a . b / D + 1)^3, averaged over random subsets.
- Improved precision and recall (Kynkaanniemi et al. 2019): a point is covered
  by a set when it lies in the ball of some member whose radius is that
  member's distance to its k-th nearest neighbour in its own set (k = 3).
- Density and coverage (Naeem et al. 2020): with the real set's k-NN balls
  (k = 5), density counts how many balls hold each sample, divided by k;
  coverage is the fraction of real balls holding at least one sample.
- Inception Score (Salimans et al. 2016) of class logits, and intra-class FID
  (the mean over classes of the FID between same-label subsets).
- NDB (Richardson & Weiss 2018): K-means bins on the real set; a bin is
  statistically different when a two-proportion z-test rejects equal real and
  sample proportions at level alpha.
"""

import hashlib
from typing import Any

import numpy as np
import scipy.special
from threadpoolctl import threadpool_limits

from gen_jax.metrics.classifier import INPUT_RANGE, Classifier, split_channels

_CHUNK_ELEMENTS = 1 << 24  # cap on the (rows, M) distance block: 128 MB f64


def _as_2d(x, name: str) -> np.ndarray:
  x = np.asarray(x, np.float64)
  if x.ndim != 2:
    raise ValueError(f"{name} must be (N, D), got shape {x.shape}")
  return x


# --- Frechet distance ---------------------------------------------------------

def frechet_distance_from_stats(mu1, sigma1, mu2, sigma2) -> float:
  """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^{1/2}); (D,) means, (D, D) covs.

  tr (S1 S2)^{1/2} = tr (S1^{1/2} S2 S1^{1/2})^{1/2}, a symmetric PSD matrix,
  so both roots come from `eigh` (negative round-off eigenvalues clipped to 0):
  no complex parts, unlike `scipy.linalg.sqrtm(S1 @ S2)`.
  """
  mu1 = np.atleast_1d(mu1).astype(np.float64)
  mu2 = np.atleast_1d(mu2).astype(np.float64)
  s1 = np.atleast_2d(sigma1).astype(np.float64)
  s2 = np.atleast_2d(sigma2).astype(np.float64)
  # One BLAS thread: beside JAX's busy thread pool, threaded LAPACK took ~2 s
  # per 384 x 384 eigh (against 0.02 s alone), most of an evaluation's time.
  with threadpool_limits(1):
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = np.linalg.eigvalsh(root1 @ s2 @ root1)
  tr_sqrt = np.sqrt(np.clip(inner, 0, None)).sum()
  diff = mu1 - mu2
  return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt)


def frechet_distance(x, y) -> float:
  """Frechet distance between Gaussians fitted to (N, D) x and (M, D) y."""
  x, y = _as_2d(x, "x"), _as_2d(y, "y")
  if len(x) < 2 or len(y) < 2:
    raise ValueError("Frechet distance needs at least 2 examples per set")
  return frechet_distance_from_stats(x.mean(0), np.cov(x, rowvar=False),
                                     y.mean(0), np.cov(y, rowvar=False))


# --- KID ----------------------------------------------------------------------

def polynomial_kernel(a, b) -> np.ndarray:
  """(N, M) cubic kernel (a . b / D + 1)^3 of (N, D) a and (M, D) b."""
  return (a @ b.T / a.shape[1] + 1.0) ** 3


def mmd2_unbiased(x, y) -> float:
  """Unbiased MMD^2 estimate with `polynomial_kernel` (Binkowski et al. 2018).

  sum_{i != j} k(x_i, x_j) / (m (m-1)) + sum_{i != j} k(y_i, y_j) / (n (n-1))
  - 2 mean_{i, j} k(x_i, y_j).
  """
  x, y = _as_2d(x, "x"), _as_2d(y, "y")
  m, n = len(x), len(y)
  if m < 2 or n < 2:
    raise ValueError("MMD needs at least 2 examples per set")
  kxx, kyy = polynomial_kernel(x, x), polynomial_kernel(y, y)
  return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1))
               + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
               - 2 * polynomial_kernel(x, y).mean())


def kernel_distance(x, y, *, num_subsets: int = 100, subset_size: int = 1000,
                    seed: int = 0) -> tuple[float, float]:
  """KID: mean and std of `mmd2_unbiased` over random subsets.

  Each subset draws min(subset_size, N, M) rows of each set without
  replacement (Binkowski et al.: 100 subsets of 1000). When that is all of both
  sets a single exact estimate is returned, with std 0.
  """
  x, y = _as_2d(x, "x"), _as_2d(y, "y")
  size = min(subset_size, len(x), len(y))
  if size == len(x) == len(y):
    return mmd2_unbiased(x, y), 0.0
  rng = np.random.default_rng(seed)
  values = [mmd2_unbiased(x[rng.choice(len(x), size, replace=False)],
                          y[rng.choice(len(y), size, replace=False)])
            for _ in range(num_subsets)]
  return float(np.mean(values)), float(np.std(values))


# --- improved precision and recall --------------------------------------------

def _sq_dist_blocks(a: np.ndarray, b: np.ndarray):
  """Yields (start, (rows, M) squared distances) over row blocks of a."""
  b_sq = (b * b).sum(1)
  rows = max(1, _CHUNK_ELEMENTS // max(1, len(b)))
  for start in range(0, len(a), rows):
    blk = a[start:start + rows]
    d2 = (blk * blk).sum(1)[:, None] - 2 * blk @ b.T + b_sq[None, :]
    yield start, np.maximum(d2, 0.0)


def knn_radii_sq(x, k: int = 3) -> np.ndarray:
  """(N,) squared distance of each row of x to its k-th nearest other row."""
  x = _as_2d(x, "x")
  if len(x) <= k:
    raise ValueError(f"need more than k={k} examples, got {len(x)}")
  out = np.empty(len(x))
  for start, d2 in _sq_dist_blocks(x, x):
    out[start:start + len(d2)] = np.partition(d2, k, axis=1)[:, k]  # 0 = self
  return out


def coverage(query, centers, radii_sq) -> np.ndarray:
  """(N,) bool: query row lies in some ball ||q - c_j||^2 <= radii_sq[j]."""
  inside = np.zeros(len(query), bool)
  for start, d2 in _sq_dist_blocks(_as_2d(query, "query"),
                                   _as_2d(centers, "centers")):
    inside[start:start + len(d2)] = (d2 <= radii_sq[None, :]).any(1)
  return inside


def precision_recall(samples, real, k: int = 3) -> tuple[float, float]:
  """Improved precision and recall (Kynkaanniemi et al. 2019).

  precision = fraction of samples inside the k-NN balls of the real set;
  recall = fraction of real points inside the k-NN balls of the sample set.
  """
  samples, real = _as_2d(samples, "samples"), _as_2d(real, "real")
  precision = coverage(samples, real, knn_radii_sq(real, k)).mean()
  recall = coverage(real, samples, knn_radii_sq(samples, k)).mean()
  return float(precision), float(recall)


def density_coverage(samples, real, k: int = 5) -> tuple[float, float]:
  """Density and coverage (Naeem et al. 2020, section 4; k = 5 there).

  With r_i the distance of real point i to its k-th nearest other real point:
  density = 1/(k M) sum_j #{i : ||y_j - x_i|| < r_i} over the M samples y_j;
  coverage = 1/N #{i : some sample lies within r_i of x_i} over the N real
  points. Strict inequalities, as the authors' `prdc` package.
  """
  samples, real = _as_2d(samples, "samples"), _as_2d(real, "real")
  radii_sq = knn_radii_sq(real, k)
  count = np.zeros(len(samples))
  covered = np.zeros(len(real), bool)
  for start, d2 in _sq_dist_blocks(samples, real):
    inside = d2 < radii_sq[None, :]
    count[start:start + len(d2)] = inside.sum(1)
    covered |= inside.any(0)
  return float(count.sum() / (k * len(samples))), float(covered.mean())


# --- class-based metrics ------------------------------------------------------

def inception_score(logits, *, splits: int = 10,
                    shuffle_seed: int | None = 2020) -> tuple[float, float]:
  """Inception Score exp(E_x KL(p(y|x) || p(y))): mean and std over splits.

  As torch-fidelity's `isc`: `logits` (N, K) are unnormalised log p(y|x);
  rows are shuffled with `np.random.RandomState(shuffle_seed)` (None: kept in
  order), cut into `splits` chunks [i N / splits, (i+1) N / splits), p(y) is
  each chunk's mean p(y|x), and the score is computed per chunk in float64.
  """
  logits = _as_2d(logits, "logits")
  if len(logits) < splits:
    raise ValueError(f"Inception Score needs at least splits={splits} "
                     f"examples, got {len(logits)}")
  if shuffle_seed is not None:
    logits = logits[np.random.RandomState(shuffle_seed).permutation(
        len(logits))]
  log_p = logits - scipy.special.logsumexp(logits, axis=1, keepdims=True)
  p = np.exp(log_p)
  n = len(logits)
  scores = []
  for i in range(splits):
    lo, hi = i * n // splits, (i + 1) * n // splits
    log_q = np.log(p[lo:hi].mean(0))
    kl = (p[lo:hi] * (log_p[lo:hi] - log_q)).sum(1).mean()
    scores.append(np.exp(kl))
  return float(np.mean(scores)), float(np.std(scores))


def intra_class_fid(samples, sample_labels, real,
                    real_labels) -> dict[str, Any]:
  """Intra-class FID (Miyato & Koyama 2018): FID per label, then the mean.

  Args:
    samples: (N, D) features of generated examples, drawn with
      `sample_labels` (N,) as the conditioning labels.
    real: (M, D) features of real examples with labels `real_labels` (M,).

  Returns:
    intra_fid: the mean over the real set's labels; per_class: {label: FID}.
    Every real label needs at least 2 examples in each set.
  """
  samples, real = _as_2d(samples, "samples"), _as_2d(real, "real")
  sample_labels = np.asarray(sample_labels).reshape(-1)
  real_labels = np.asarray(real_labels).reshape(-1)
  if len(sample_labels) != len(samples) or len(real_labels) != len(real):
    raise ValueError("need one label per example")
  per_class = {}
  for label in np.unique(real_labels):
    mine = samples[sample_labels == label]
    if len(mine) < 2:
      raise ValueError(f"intra-class FID: label {label} has {len(mine)} "
                       "samples; need at least 2")
    per_class[label.item()] = frechet_distance(mine,
                                               real[real_labels == label])
  return {"intra_fid": float(np.mean(list(per_class.values()))),
          "per_class": per_class}


# --- NDB ----------------------------------------------------------------------

def two_proportion_z_test(p1, n1: int, p2, n2: int) -> np.ndarray:
  """Two-sided p-values of H0: p1 = p2 (pooled standard error)."""
  p1, p2 = np.asarray(p1, np.float64), np.asarray(p2, np.float64)
  pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
  se = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
  with np.errstate(divide="ignore", invalid="ignore"):
    z = np.where(se > 0, (p1 - p2) / se, 0.0)  # se = 0 only if p1 = p2 = 0, 1
  import scipy.stats  # 0.3-1 s to import: only for this p-value
  return 2 * scipy.stats.norm.sf(np.abs(z))


def _jensen_shannon(p, q) -> float:
  m = 0.5 * (p + q)

  def kl(a):
    pos = a > 0
    return float(np.sum(a[pos] * np.log(a[pos] / m[pos])))
  return 0.5 * (kl(p) + kl(q))


_BINS: dict[tuple, Any] = {}  # the last few fits; bins depend only on `real`


def _fit_bins(real: np.ndarray, num_bins: int, seed: int, n_init: int):
  """K-means of `real`, reused while evaluation compares against the same set.

  One thread: the fit is then the same on any machine, and on a shared CPU it
  was 10-40x faster than sklearn's default OpenMP threads.
  """
  from sklearn.cluster import KMeans
  key = (hashlib.sha1(np.ascontiguousarray(real)).hexdigest(), real.shape,
         num_bins, seed, n_init)
  if key not in _BINS:
    with threadpool_limits(1):
      km = KMeans(num_bins, n_init=n_init, max_iter=100,
                  random_state=seed).fit(real)
    if len(_BINS) >= 4:
      _BINS.pop(next(iter(_BINS)))
    _BINS[key] = (km, km.labels_)
  return _BINS[key]


def ndb(samples, real, *, num_bins: int = 100, alpha: float = 0.05,
        seed: int = 0, n_init: int = 10) -> dict[str, Any]:
  """Number of statistically different bins (Richardson & Weiss 2018).

  As in the authors' code (no whitening): K-means on `real` (sklearn,
  random_state `seed`, `n_init` restarts, max_iter 100), every sample assigned
  to its nearest centre, and a pooled two-proportion z-test per bin.

  Args:
    samples: (N, D) generated examples; real: (M, D) real examples, M >= bins.
    num_bins: K, the number of K-means bins.
    alpha: significance level of each bin's two-sided test.

  Returns:
    ndb: int, number of different bins; ndb_fraction: ndb / K; jsd: Jensen-
    Shannon divergence (nats) of the two bin histograms; different (K,) bool;
    real_proportions, sample_proportions, p_values (K,).
  """
  samples, real = _as_2d(samples, "samples"), _as_2d(real, "real")
  if len(real) < num_bins:
    raise ValueError(f"NDB needs at least num_bins={num_bins} real examples, "
                     f"got {len(real)}")
  km, real_labels = _fit_bins(real, num_bins, seed, n_init)
  p_real = np.bincount(real_labels, minlength=num_bins) / len(real)
  with threadpool_limits(1):
    assigned = km.predict(samples)
  p_gen = np.bincount(assigned, minlength=num_bins) / len(samples)
  p_values = two_proportion_z_test(p_real, len(real), p_gen, len(samples))
  different = p_values < alpha
  return {"ndb": int(different.sum()), "ndb_fraction": float(different.mean()),
          "jsd": _jensen_shannon(p_real, p_gen), "different": different,
          "real_proportions": p_real, "sample_proportions": p_gen,
          "p_values": p_values}


# --- in the classifier's feature space ----------------------------------------

def image_features(images, classifier: Classifier,
                   value_range=INPUT_RANGE) -> np.ndarray:
  """(N, C * F) classifier features of each channel of (N, H, W, C) images.

  Channels are classified as separate digits (as for stacked digits) and their
  F-dim penultimate features concatenated in channel order.
  """
  return classifier.features(split_channels(images),
                             value_range).reshape(len(images), -1)


def image_metrics(samples, real, classifier: Classifier,
                  value_range=INPUT_RANGE, *, real_value_range=None,
                  k: int = 3, kid_subsets: int = 100,
                  kid_subset_size: int = 1000, ndb_bins: int = 100,
                  ndb_on: str = "pixels", seed: int = 0) -> dict[str, float]:
  """Domain FID, KID, precision, recall and NDB of generated vs real images.

  Args:
    samples: (N, H, W, C) generated images with values in `value_range`.
    real: (M, H, W, C) real images, values in `real_value_range`
      (default: `value_range`).
    classifier: the per-channel classifier giving the feature space.
    k: neighbourhood size for precision and recall.
    kid_subsets, kid_subset_size: KID subsets (see `kernel_distance`).
    ndb_bins: K-means bins for NDB; needs M >= ndb_bins.
    ndb_on: 'pixels' (as in Richardson & Weiss: flattened images mapped to
      [0, 1]) or 'features' (the classifier features).
    seed: for the KID subsets and the K-means.

  Returns:
    fid, kid, kid_std, precision, recall, ndb (count), ndb_fraction.
  """
  if ndb_on not in ("pixels", "features"):
    raise ValueError(f"ndb_on={ndb_on!r} is not one of: features, pixels")
  real_value_range = real_value_range or value_range
  f_gen = image_features(samples, classifier, value_range)
  f_real = image_features(real, classifier, real_value_range)
  kid, kid_std = kernel_distance(f_gen, f_real, num_subsets=kid_subsets,
                                 subset_size=kid_subset_size, seed=seed)
  precision, recall = precision_recall(f_gen, f_real, k)
  if ndb_on == "pixels":
    def flat(x, r):
      x = np.asarray(x, np.float64).reshape(len(x), -1)
      return (x - r[0]) / (r[1] - r[0])
    ndb_in = flat(samples, value_range), flat(real, real_value_range)
  else:
    ndb_in = f_gen, f_real
  bins = ndb(*ndb_in, num_bins=ndb_bins, seed=seed)
  return {"fid": frechet_distance(f_gen, f_real), "kid": kid,
          "kid_std": kid_std, "precision": precision, "recall": recall,
          "ndb": bins["ndb"], "ndb_fraction": bins["ndb_fraction"]}
