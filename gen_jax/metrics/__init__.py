"""Evaluation metrics, as pure functions of sample arrays.

- `mixture_metrics`: modes / %HQ / reverse KL on 2D Gaussian mixtures.
- `stacked_mode_metrics`: modes covered / KL on stacked digits (1000 modes).
- `image_metrics`: domain FID, KID, precision, recall and NDB in the feature
  space of the project's digit classifier (`get_classifier`).
"""

from gen_jax.metrics.classifier import Classifier, get_classifier
from gen_jax.metrics.classifier import train_classifier
from gen_jax.metrics.image_sets import frechet_distance, image_features
from gen_jax.metrics.image_sets import image_metrics, kernel_distance
from gen_jax.metrics.image_sets import mmd2_unbiased, ndb, precision_recall
from gen_jax.metrics.mixture import mixture_metrics
from gen_jax.metrics.stacked import stacked_mode_metrics

__all__ = [
    "Classifier", "frechet_distance", "get_classifier", "image_features",
    "image_metrics", "kernel_distance", "mixture_metrics", "mmd2_unbiased",
    "ndb", "precision_recall", "stacked_mode_metrics", "train_classifier",
]
