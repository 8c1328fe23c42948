"""Evaluation metrics, as pure functions of sample arrays.

- `mixture_metrics`: modes / %HQ / reverse KL on 2D Gaussian mixtures.
- `stacked_mode_metrics`: modes covered / KL on stacked digits (1000 modes).
- `image_metrics`: domain FID, KID, precision, recall and NDB in the feature
  space of the project's digit classifier (`get_classifier`).
- `inception` (imported on demand): FID, KID, IS, precision/recall,
  density/coverage and intra-class FID on the FID Inception-v3's features,
  with user-supplied weights (docs/metrics.md).
"""

from gen_jax.metrics.classifier import Classifier, get_classifier
from gen_jax.metrics.classifier import train_classifier
from gen_jax.metrics.image_sets import density_coverage, frechet_distance
from gen_jax.metrics.image_sets import image_features, image_metrics
from gen_jax.metrics.image_sets import inception_score, intra_class_fid
from gen_jax.metrics.image_sets import kernel_distance, mmd2_unbiased, ndb
from gen_jax.metrics.image_sets import precision_recall
from gen_jax.metrics.mixture import mixture_metrics
from gen_jax.metrics.stacked import stacked_mode_metrics

__all__ = [
    "Classifier", "density_coverage", "frechet_distance", "get_classifier",
    "image_features", "image_metrics", "inception_score", "intra_class_fid",
    "kernel_distance", "mixture_metrics", "mmd2_unbiased", "ndb",
    "precision_recall", "stacked_mode_metrics", "train_classifier",
]
