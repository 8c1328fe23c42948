"""Mode coverage on stacked digits (Stacked MNIST: 1000 modes).

Metric of Metz et al. 2017 (Unrolled GAN), VEEGAN and PacGAN: a pretrained
digit classifier labels each of the 3 channels; a sample's mode is its label
triple (a, b, c) -> 100 a + 10 b + c. Modes covered = distinct triples among
the samples; KL = KL(p_G || uniform over 1000) = sum_k p_k log(1000 p_k).
VEEGAN's protocol uses 26,000 samples, the Unrolled-GAN one 25,600.
"""

from typing import Any

import numpy as np

from gen_jax.metrics.classifier import INPUT_RANGE, Classifier, split_channels
from gen_jax.metrics.mixture import reverse_kl_to_uniform


def channel_labels(samples, classifier: Classifier,
                   value_range=INPUT_RANGE) -> np.ndarray:
  """(N, C) labels of each channel of (N, H, W, C) images."""
  n, c = len(samples), np.shape(samples)[-1]
  return classifier.predict(split_channels(samples),
                            value_range).reshape(n, c)


def mode_index(labels, num_classes: int = 10) -> np.ndarray:
  """(N,) index sum_c labels[:, c] num_classes^(C-1-c): 100 a + 10 b + c."""
  labels = np.asarray(labels, np.int64)
  weights = num_classes ** np.arange(labels.shape[1] - 1, -1, -1)
  return labels @ weights


def stacked_mode_metrics(samples, classifier: Classifier,
                         value_range=INPUT_RANGE) -> dict[str, Any]:
  """Modes covered and KL to uniform for (N, H, W, 3) stacked-digit samples.

  Args:
    samples: (N, H, W, 3) images with values in `value_range` (e.g. (-1, 1)
      for a tanh generator).
    classifier: a per-channel `Classifier` (10 classes).
    value_range: (low, high) of `samples`.

  Returns:
    modes: int, distinct label triples (out of 1000).
    kl: float, sum_k p_k log(1000 p_k) in nats.
    counts: (1000,) int, samples per triple 100 a + 10 b + c.
  """
  labels = channel_labels(samples, classifier, value_range)
  if labels.shape[1] != 3:
    raise ValueError(f"stacked digits have 3 channels, got {labels.shape[1]}")
  counts = np.bincount(mode_index(labels), minlength=1000)
  return {"modes": int((counts > 0).sum()),
          "kl": reverse_kl_to_uniform(counts),
          "counts": counts}
