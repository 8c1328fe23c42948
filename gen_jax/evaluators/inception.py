"""The Inception metrics of a run's samples: the numbers papers cite.

FID, KID, Inception Score, precision/recall, density/coverage (and for
conditional runs the intra-class FID) of `config.inception.num_samples`
samples against the reference split (`config.inception.reference`: 'eval',
the held-out split, or 'train'), logged as `eval/inception_fid`,
`eval/inception_kid`, ... (the domain metrics of the digit classifier keep
`eval/fid`). The protocol record (reference, number of real and fake images,
weights' sha256, resize, ...) is printed once per run, at the first
evaluation, as one JSON line `inception protocol: {...}`.

The network runs jitted with each batch sharded over the mesh's `data` axis
(`metrics.inception.ShardedInception`), so every device of a pod computes
its share; the reference features are computed once and cached
(`metrics.inception.reference_features`). Grey images are repeated to RGB,
as pytorch-fid does.

In the 'default' set for image datasets other than the embedded digits
and their image-to-image tasks (which have their domain or pixel metrics
and stay fast), so also for the translations of a translator on photos
(`folder_pairs:PATH`, `cycle_gan:NAME`: FID of the outputs against the
held-out targets); `config.evals=('inception',
...)` runs it on those too. Without weights it prints one line naming the
file to supply, when the run is set up, and returns no metrics: the run and
the other evaluators go on.
"""

import dataclasses
import json
import sys

import jax
import numpy as np

from gen_jax.data import translation
from gen_jax.errors import ConfigError
from gen_jax.evaluators.base import Context, Runs, register
from gen_jax.metrics import image_sets
from gen_jax.metrics import inception as inc

PREFIX = "inception_"
# Domain metrics suffice for the embedded digits, and their translation
# tasks (named as here, with any ':ARG') are scored on held-out pixels.
EMBEDDED_IMAGES = ("digits", "stacked_digits", *translation.TASKS)
_BATCH = 1000  # images read per reference batch


def _applies(ctx: Context) -> bool:
  return ctx.is_image and ctx.info.example_shape[-1] in (1, 3)


def _default(ctx: Context) -> bool:
  return (_applies(ctx)
          and ctx.info.name.split(":")[0] not in EMBEDDED_IMAGES)


def _say(message: str) -> None:
  if jax.process_index() == 0:
    print(message, file=sys.stderr, flush=True)


def _prepare(ctx: Context) -> None:
  """Loads the weights (or says once what to supply) and checks that the
  reference split exists, before anything is compiled."""
  cfg = ctx.config.inception
  split = cfg.reference
  if split == "eval" and ctx.info.num_eval == 0:
    raise ConfigError(
        f"config.inception.reference='eval': dataset {ctx.info.name!r} has no "
        "held-out split; use 'train'")
  if split == "train" and not (hasattr(ctx.dataset, "arrays")
                               or _tfds_name(ctx)):
    raise ConfigError(
        f"config.inception.reference='train' is not available for "
        f"{ctx.info.name!r} (folder datasets: use 'eval', or score saved "
        "samples against the folder with `python -m gen_jax.fid`)")
  model, message = inc.get_inception(cfg.weights or None)
  if model is None:
    _say(message)
    ctx.cache["inception"] = None
    return
  ctx.cache["inception"] = inc.ShardedInception(model, ctx.mesh,
                                                cfg.batch_per_device)


def _tfds_name(ctx: Context) -> bool:
  from gen_jax.data import tfds_data  # pylint: disable=import-outside-toplevel
  return ctx.info.name in tfds_data.SPECS


def _to_unit(x: np.ndarray, value_range) -> np.ndarray:
  lo, hi = value_range
  return (np.asarray(x, np.float32) - lo) / (hi - lo)


def _real_batches(ctx: Context):
  """The reference split in [0, 1] as the dataset serves it, in order."""
  info, split = ctx.info, ctx.config.inception.reference
  if split == "eval":
    for b in ctx.dataset.eval_batches(local_batch_size=_BATCH,
                                      process_index=0, process_count=1):
      keep = b["mask"] > 0
      out = {"x": _to_unit(b["x"][keep], info.value_range)}
      if "label" in b:
        out["label"] = b["label"][keep]
      yield out
  elif hasattr(ctx.dataset, "arrays"):  # embedded: the whole split in memory
    arrays = ctx.dataset.arrays("train")
    for i in range(0, len(arrays["x"]), _BATCH):
      yield {"x": _to_unit(arrays["x"][i:i + _BATCH], info.value_range),
             **({"label": arrays["label"][i:i + _BATCH]}
                if "label" in arrays else {})}
  else:
    from gen_jax.data import tfds_data  # pylint: disable=import-outside-toplevel
    yield from tfds_data.split_batches(
        info.name, "train", info.example_shape[0],
        info.extras.get("data_dir"), (0.0, 1.0), chunk=_BATCH)


def _limit(batches, n: int):
  for b in batches:
    if n <= 0:
      return
    b = {k: v[:n] for k, v in b.items()}
    n -= len(b["x"])
    yield b


def _reference(ctx: Context, model) -> dict[str, np.ndarray]:
  if "reference" not in ctx.cache:
    cfg, info = ctx.config, ctx.info
    fingerprint = ""
    if _tfds_name(ctx):
      from gen_jax.data import tfds_data  # pylint: disable=import-outside-toplevel
      fingerprint = tfds_data.fingerprint(info.name,
                                          info.extras.get("data_dir"))
    key = {"dataset": info.name, "split": cfg.inception.reference,
           "image_size": info.example_shape[0],
           "channels": info.example_shape[-1], "fingerprint": fingerprint,
           "num_train": info.num_train, "num_eval": info.num_eval,
           "binarize": bool(cfg.data.get("binarize", False)),
           "max_images": cfg.inception.num_real}
    batches = _real_batches(ctx)
    if cfg.inception.num_real:
      batches = _limit(batches, cfg.inception.num_real)
    ctx.cache["reference"] = inc.reference_features(model, key, batches)
  return ctx.cache["reference"]


def _features(model, ctx: Context, n: int) -> list[dict[str, np.ndarray]]:
  """Features (and labels) of n samples per run, drawn chunk by chunk."""
  parts: list[list[dict]] = [[] for _ in ctx.run_names]
  for chunk in ctx.draw(n):
    for mine, run in zip(parts, chunk):
      f = model.features(run["x"], ctx.info.value_range)
      if run.get("label") is not None and np.ndim(run["label"]) == 1:
        f["label"] = np.asarray(run["label"])
      mine.append(f)
  return [{k: np.concatenate([p[k] for p in mine]) for k in mine[0]}
          for mine in parts]


def scores(fake: dict, real: dict, conditional: bool) -> dict[str, float]:
  """`inception_metrics` of one run, named `inception_*`; the intra-class
  FID only for conditional runs (nan when a class has < 2 samples)."""
  out = inc.inception_metrics({k: v for k, v in fake.items() if k != "label"},
                              {k: v for k, v in real.items() if k != "label"})
  out = {k: v for k, v in out.items() if not k.startswith("is_real")}
  if conditional and "label" in fake and np.ndim(real.get("label")) == 1:
    try:
      out["intra_fid"] = image_sets.intra_class_fid(
          fake["pool"], fake["label"], real["pool"],
          real["label"])["intra_fid"]
    except ValueError:
      out["intra_fid"] = float("nan")
  return {PREFIX + k: float(v) for k, v in out.items()}


@register("inception", "samples", _applies, default=_default,
          prepare=_prepare)
def inception(ctx: Context, runs: Runs):
  """Inception FID/KID/IS/PR/DC (+ intra-class FID) of each run."""
  model = ctx.cache.get("inception")
  if model is None:  # no weights: said once at set-up
    return [{} for _ in runs], {}
  real = _reference(ctx, model)
  n = ctx.config.inception.num_samples
  fakes = _features(model, ctx, n)
  if "protocol" not in ctx.cache:
    info = ctx.info
    ctx.cache["protocol"] = inc.Protocol(
        reference=(f"{info.name}:{ctx.config.inception.reference}"
                   f":{info.example_shape[0]}"),
        num_real=len(real["pool"]), num_fake=n,
        weights_sha256=model.source_sha256)
    _say("inception protocol: "
         + json.dumps(dataclasses.asdict(ctx.cache["protocol"])))
  return [scores(f, real, ctx.conditional) for f in fakes], {}
