"""Unpaired translation (CycleGAN): A -> B -> A and B -> A -> B pictures,
domain FIDs of the translations and, with labelled held-out domains, how
often a translation keeps its digit.

They read what a cycle translator's `sample` returns for held-out examples
(`trainers/cyclegan.py`): 'cond' (A images), 'x' = A -> B, 'cycle' =
A -> B -> A, 'b' (B images), 'b_to_a', 'b_cycle' = B -> A -> B, and when
the held-out split is labelled, 'label' (the digit of each A source, which
its translation 'x' should show) and 'b_label' (of each B image). They
apply when the trainer's `sample_keys` list them. The held-out cycle errors come
from the trainer's `held_out` (the `held_out` evaluator: eval/cycle_a,
eval/cycle_b).
"""

import numpy as np

from gen_jax import metrics, plots
from gen_jax.evaluators.base import Context, Runs, per_run, register

ROWS = 8
CYCLE_KEYS = ("cond", "x", "cycle", "b", "b_to_a", "b_cycle")


def _cycles(ctx: Context) -> bool:
  return ctx.is_image and set(CYCLE_KEYS) <= set(ctx.sample_keys)


def cycle_rows(run: dict, rows: int = ROWS) -> np.ndarray:
  """(rows * 6, H, W, C) images: row i is A_i, A_i -> B, A_i -> B -> A,
  B_i, B_i -> A, B_i -> A -> B (the two domains' channels made equal)."""
  cols = [run[k][:rows] for k in CYCLE_KEYS]
  channels = max(c.shape[-1] for c in cols)
  cols = [np.repeat(c, channels // c.shape[-1], axis=-1) for c in cols]
  return np.stack(cols, axis=1).reshape(-1, *cols[0].shape[1:])


@register("cycles", "samples", _cycles, picture=True)
def cycles(ctx: Context, runs: Runs):
  """The picture `cycles`: 8 rows of A, A -> B, A -> B -> A | B,
  B -> A, B -> A -> B; with several seeds, 2 rows per seed."""
  rows = ROWS if len(runs) == 1 else 2
  x = np.concatenate([cycle_rows(r, rows) for r in runs])
  scale = max(1, 64 // ctx.info.example_shape[0])
  return [{}] * len(runs), {"cycles": plots.image_grid(
      x, ctx.info.value_range, columns=len(CYCLE_KEYS), scale=scale)}


def _fids(ctx: Context) -> bool:
  return _cycles(ctx) and "classifier" in ctx.info.extras


@register("translation_fid", "samples", _fids)
@per_run
def translation_fid(ctx: Context, run: dict) -> dict[str, float]:
  """Domain FIDs (the dataset's digit classifier's features, as the
  `domain` evaluator) against the held-out reference: `fid_ab` of the
  A -> B translations against real B, `fid_ba` of B -> A against real A,
  and the baseline `fid_untranslated`: the untranslated A sources against
  real B (what fid_ab is without any translation)."""
  ref, vr, clf = ctx.reference(), ctx.info.value_range, ctx.classifier()
  feat = lambda x: metrics.image_features(x, clf, vr)
  real_a, real_b = feat(ref["cond"]), feat(ref["x"])
  return {"fid_ab": metrics.frechet_distance(feat(run["x"]), real_b),
          "fid_ba": metrics.frechet_distance(feat(run["b_to_a"]), real_a),
          "fid_untranslated": metrics.frechet_distance(feat(run["cond"]),
                                                       real_b)}


def _labels(ctx: Context) -> bool:
  extras = ctx.info.extras
  return (_cycles(ctx) and "classifier_a" in extras
          and "classifier_b" in extras)


def _domain_classifier(ctx: Context, domain: str):
  return metrics.get_classifier(ctx.info.extras[f"classifier_{domain}"],
                                ctx.info.example_shape[0],
                                data_dir=ctx.info.extras.get("data_dir"))


@register("cycle_labels", "samples", _labels,
          prepare=lambda ctx: [_domain_classifier(ctx, d) for d in "ab"])
@per_run
def cycle_labels(ctx: Context, run: dict) -> dict[str, float]:
  """Content kept by the translations (the label of a held-out digit is the
  label of its translation): `label_ab`, the accuracy of domain B's
  classifier on the A -> B translations against the A sources' labels;
  `label_ba`, domain A's classifier on B -> A against the B labels. Beside
  them, what each classifier reads on real held-out images of its own
  domain (`label_real_a`, `label_real_b`: the ceiling) and domain B's
  classifier on the untranslated A sources (`label_untranslated`: the
  floor, what label_ab is without a translation). Each domain's classifier
  is the dataset's `classifier_a` / `classifier_b` (`metrics/classifier.py`)."""
  vr = ctx.info.value_range
  clf_a, clf_b = _domain_classifier(ctx, "a"), _domain_classifier(ctx, "b")
  acc = lambda clf, x, y: float(np.mean(clf.predict(x, vr) == y))
  ref = ctx.reference()
  return {"label_ab": acc(clf_b, run["x"], run["label"]),
          "label_ba": acc(clf_a, run["b_to_a"], run["b_label"]),
          "label_real_a": acc(clf_a, ref["cond"], ref["cond_label"]),
          "label_real_b": acc(clf_b, ref["x"], ref["label"]),
          "label_untranslated": acc(clf_b, run["cond"], run["label"])}
