"""Metrics of samples: 2D modes, domain FID/KID/PR/NDB, stacked modes, and
for conditional models the classifier's accuracy and intra-class FID."""

import numpy as np

from gen_jax import metrics
from gen_jax.evaluators.base import Context, per_run, register


def _mixture(ctx: Context) -> bool:
  return "modes" in ctx.info.extras


@register("mixture", "samples", _mixture)
@per_run
def mixture(ctx: Context, run: dict) -> dict[str, float]:
  """2D mixtures: modes captured, % high quality, reverse KL over all
  samples and over HQ samples only (`reverse_kl_hq`, nan without any; the
  quantity PacGAN's released MetricLogger histograms)."""
  extras, samples = ctx.info.extras, run["x"]
  m = metrics.mixture_metrics(samples, extras["modes"], extras["mode_std"])
  out = {k: float(m[k]) for k in ("modes", "hq", "reverse_kl")}
  out["reverse_kl_hq"] = float(metrics.mixture_metrics(
      samples, extras["modes"], extras["mode_std"],
      hq_only=True)["reverse_kl"])
  return out


def _has_classifier(ctx: Context) -> bool:
  return ctx.is_image and "classifier" in ctx.info.extras


@register("domain", "samples", _has_classifier)
@per_run
def domain(ctx: Context, run: dict) -> dict[str, float]:
  """Domain FID, KID, precision/recall and NDB against the held-out
  reference, in the feature space of the dataset's digit classifier."""
  real = ctx.reference()["x"]
  vr = ctx.info.value_range
  out = metrics.image_metrics(
      run["x"], real, ctx.classifier(), vr,
      kid_subset_size=min(1000, len(real)),
      ndb_bins=max(2, min(100, len(real) // 20)))
  return {k: float(v) for k, v in out.items()}


def _stacked(ctx: Context) -> bool:
  return _has_classifier(ctx) and ctx.info.extras.get("num_modes") == 1000


@register("stacked_modes", "samples", _stacked)
@per_run
def stacked_modes(ctx: Context, run: dict) -> dict[str, float]:
  """Stacked digits: modes covered of 1000 and the KL to uniform."""
  m = metrics.stacked_mode_metrics(run["x"], ctx.classifier(),
                                   ctx.info.value_range)
  return {"modes": float(m["modes"]), "kl": float(m["kl"])}


def _conditional(ctx: Context) -> bool:
  return ctx.conditional and _has_classifier(ctx)


@register("class_accuracy", "samples", _conditional)
@per_run
def class_accuracy(ctx: Context, run: dict) -> dict[str, float]:
  """Does class k look like k? The fraction of conditional samples that the
  digit classifier assigns to the class they were drawn for (the classifier's
  own held-out accuracy bounds what real data would score)."""
  pred = ctx.classifier().predict(run["x"], ctx.info.value_range)
  return {"class_accuracy": float(np.mean(pred == run["label"]))}


@register("intra_fid", "samples", _conditional)
@per_run
def intra_fid(ctx: Context, run: dict) -> dict[str, float]:
  """Intra-class domain FID (Miyato & Koyama 2018): the FID between the
  samples of class k and the held-out examples of class k, averaged over the
  classes (classes with fewer than 2 of either are skipped)."""
  real = ctx.reference()
  vr, clf = ctx.info.value_range, ctx.classifier()
  f_fake = metrics.image_features(run["x"], clf, vr)
  f_real = metrics.image_features(real["x"], clf, vr)
  fids = []
  for k in range(ctx.num_classes):
    a, b = f_fake[run["label"] == k], f_real[real["label"] == k]
    if len(a) > 1 and len(b) > 1:
      fids.append(metrics.frechet_distance(a, b))
  return {"intra_fid": float(np.mean(fids)) if fids else float("nan")}
