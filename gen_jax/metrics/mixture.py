"""Mode coverage of a 2D (or D-dim) Gaussian mixture, as in VEEGAN and PacGAN.

Definitions (Srivastava et al. 2017, VEEGAN; Lin et al. 2018, PacGAN, their
released code):
- each sample is assigned to its nearest mode mu (Euclidean distance);
- it is *high quality* (HQ) when sqrt(sum_d (x_d - mu_d)^2 / sigma^2) < 3;
- modes captured = number of modes that are the nearest mode of >= 1 HQ sample;
- %HQ = 100 * HQ samples / all samples;
- reverse KL = KL(p_G || uniform over the K modes) = sum_k p_k log(K p_k)
  (nats) of the histogram of samples over their nearest modes.

Whether PacGAN's 2D code counts non-HQ samples in the reverse-KL histogram is
not published. Here the default (`hq_only=False`) counts *all* samples, each at
its nearest mode; `hq_only=True` counts only HQ samples. Report which one was
used. The convention is to evaluate on 2,500 generated samples.
"""

from typing import Any

import numpy as np

HQ_RADIUS = 3.0  # in units of the mode standard deviation
NUM_EVAL_SAMPLES = 2_500


def nearest_mode(samples, modes) -> tuple[np.ndarray, np.ndarray]:
  """Index of and Euclidean distance to the nearest mode.

  Args:
    samples: (N, D) points.
    modes: (K, D) mode means.

  Returns:
    (index (N,) int, distance (N,) float64).
  """
  x = np.asarray(samples, np.float64)
  mu = np.asarray(modes, np.float64)
  if x.ndim != 2 or mu.ndim != 2 or x.shape[1] != mu.shape[1]:
    raise ValueError(f"samples {x.shape} and modes {mu.shape} must be (N, D) "
                     "and (K, D) with the same D")
  # (N, K) squared distances, by direct differences (K and D are small).
  d2 = ((x[:, None, :] - mu[None, :, :]) ** 2).sum(-1)
  idx = d2.argmin(1)
  return idx, np.sqrt(d2[np.arange(len(x)), idx])


def reverse_kl_to_uniform(counts) -> float:
  """KL(p || uniform over K bins) = sum_k p_k log(K p_k) in nats.

  Args:
    counts: (K,) non-negative counts; p = counts / counts.sum(). Empty bins
      contribute 0 (0 log 0 = 0). Returns nan when all counts are zero.
  """
  counts = np.asarray(counts, np.float64)
  total = counts.sum()
  if total <= 0:
    return float("nan")
  p = counts[counts > 0] / total
  return float(np.sum(p * np.log(len(counts) * p)))


def mixture_metrics(samples, modes, std: float, *,
                    hq_only: bool = False) -> dict[str, Any]:
  """VEEGAN/PacGAN mode metrics of generated points against a known mixture.

  Args:
    samples: (N, D) generated points (numpy or jax); by convention N = 2,500.
    modes: (K, D) means of the equal-weight mixture.
    std: the per-dimension standard deviation of each component.
    hq_only: if False (default) the reverse-KL histogram counts every sample
      at its nearest mode; if True only the HQ samples.

  Returns:
    modes: int, modes that are the nearest mode of at least one HQ sample.
    hq: float, percent (0..100) of samples that are HQ.
    reverse_kl: float, KL(p_G || uniform over K) in nats of the histogram
      selected by `hq_only` (nan if that histogram is empty).
    counts: (K,) int, all samples per nearest mode.
    hq_counts: (K,) int, HQ samples per nearest mode.
    hq_only: bool, the flag used for `reverse_kl`.
  """
  if std <= 0:
    raise ValueError(f"std must be positive, got {std}")
  idx, dist = nearest_mode(samples, modes)
  k = len(modes)
  is_hq = dist / std < HQ_RADIUS
  counts = np.bincount(idx, minlength=k)
  hq_counts = np.bincount(idx[is_hq], minlength=k)
  return {
      "modes": int((hq_counts > 0).sum()),
      "hq": 100.0 * float(is_hq.mean()) if len(idx) else float("nan"),
      "reverse_kl": reverse_kl_to_uniform(hq_counts if hq_only else counts),
      "counts": counts,
      "hq_counts": hq_counts,
      "hq_only": hq_only,
  }
