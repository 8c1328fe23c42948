"""What an autoencoder's latent space shows: reconstructions,
interpolations, traversals, latent arithmetic, and the held-out
importance-weighted log-likelihood.

Each is an evaluator of one run's `Codec` (encode/decode functions the
trainer offers, see `base.Codec`), never of the trainer's state. Pictures
use the held-out reference examples (`config.train.num_eval_samples`).
"""

import jax
import numpy as np
from scipy.special import logsumexp

from gen_jax import plots
from gen_jax.evaluators.base import Codec, Context, Runs, register

PER_ROW = 8
STEPS = 10       # points along an interpolation, ends included
TRAVERSE = 9     # values of a traversed dimension
MAX_DIMS = 8     # traversed dimensions (the largest KL first)


def _images(ctx: Context) -> bool:
  return ctx.is_image


def _scale(ctx: Context) -> int:
  return max(1, 96 // ctx.info.example_shape[0])


def _grid(ctx: Context, x: np.ndarray, columns: int) -> np.ndarray:
  return plots.image_grid(x, ctx.info.value_range, columns=columns,
                          scale=_scale(ctx))


def _per_pixel_mse(a: np.ndarray, b: np.ndarray) -> float:
  return float(np.mean(np.square(np.asarray(a, np.float64) - b)))


@register("reconstructions", "codec", _images, picture=True)
def reconstructions(ctx: Context, runs: Runs):
  """Held-out inputs (rows 1, 3, ...) above their reconstructions; with a
  corruption: clean | corrupted | reconstructed from the corrupted input.
  Metrics: per-pixel squared error of the reconstructions (`recon_mse`) and,
  denoising, of the corrupted inputs (`corrupted_mse`)."""
  per_run, pics = [], {}
  for i, codec in enumerate(runs):
    x = ctx.reference()["x"][:4 * PER_ROW]
    x_in = codec.corrupt(x) if codec.corrupt is not None else x
    rec = codec.decode(codec.encode(x_in)["mean"])
    m = {"recon_mse": _per_pixel_mse(rec, x)}
    shown = [x] + ([x_in] if codec.corrupt is not None else []) + [rec]
    if codec.corrupt is not None:
      m["corrupted_mse"] = _per_pixel_mse(x_in, x)
    per_run.append(m)
    if i == 0:  # one picture: the first run's
      rows = [part[r:r + PER_ROW] for r in range(0, len(x), PER_ROW)
              for part in shown]
      pics["reconstructions"] = _grid(ctx, np.concatenate(rows), PER_ROW)
  return per_run, pics


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
  """Spherical interpolation (Shoemake 1985; White 2016 for latent spaces)
  between rows a and b (n, D) at fractions t (m,): (n, m, D). Falls back to
  the linear path where a and b are parallel."""
  na = a / np.linalg.norm(a, axis=-1, keepdims=True)
  nb = b / np.linalg.norm(b, axis=-1, keepdims=True)
  omega = np.arccos(np.clip(np.sum(na * nb, -1), -1.0, 1.0))[:, None, None]
  t = t[None, :, None]
  so = np.sin(omega)
  lin = (1 - t) * a[:, None] + t * b[:, None]
  with np.errstate(invalid="ignore", divide="ignore"):
    sph = (np.sin((1 - t) * omega) * a[:, None]
           + np.sin(t * omega) * b[:, None]) / so
  return np.where(so > 1e-6, sph, lin)


@register("interpolation", "codec", _images, picture=True)
def interpolation(ctx: Context, runs: Runs):
  """Pairs of held-out examples (ref 2i, 2i+1), one row per pair: decoded
  points on the straight line between their codes (`interpolation_linear`)
  and on the spherical path (`interpolation_slerp`). The ends are the
  reconstructions of the two examples."""
  codec = runs[0]
  x = ctx.reference()["x"][:2 * PER_ROW]
  z = codec.encode(x)["mean"]
  a, b = z[0::2], z[1::2]
  t = np.linspace(0.0, 1.0, STEPS)
  paths = {"interpolation_linear": (1 - t[None, :, None]) * a[:, None]
           + t[None, :, None] * b[:, None],
           "interpolation_slerp": slerp(a, b, t)}
  pics = {}
  for name, path in paths.items():
    out = codec.decode(path.reshape(-1, z.shape[1]).astype(np.float32))
    pics[name] = _grid(ctx, out, STEPS)
  return [{}] * len(runs), pics


def dimension_order(codes: dict[str, np.ndarray]) -> np.ndarray:
  """Latent dimensions, most informative first: by the mean KL of
  q(z_d|x) to N(0, 1) over the examples (Gaussian encoder), else by the
  codes' variance."""
  mu = codes["mean"]
  if "log_sigma" in codes:
    ls = codes["log_sigma"]
    score = np.mean(0.5 * (mu ** 2 + np.exp(2 * ls) - 1 - 2 * ls), axis=0)
  else:
    score = np.var(mu, axis=0)
  return np.argsort(-score, kind="stable")


@register("traversal", "codec", _images, picture=True)
def traversal(ctx: Context, runs: Runs):
  """One row per latent dimension (up to 8, the largest mean KL first):
  the code of a held-out example with that dimension set to values from
  -3 to 3 (the prior's +-3 std; a plain AE: the codes' mean +-3 std)."""
  codec = runs[0]
  codes = codec.encode(ctx.reference()["x"])
  order = dimension_order(codes)[:MAX_DIMS]
  mu = codes["mean"]
  base_code = mu[0]
  if "log_sigma" in codes:
    values = np.tile(np.linspace(-3, 3, TRAVERSE), (mu.shape[1], 1))
  else:
    m, s = mu.mean(0), mu.std(0)
    values = m[:, None] + s[:, None] * np.linspace(-3, 3, TRAVERSE)
  z = np.repeat(base_code[None], len(order) * TRAVERSE, 0).reshape(
      len(order), TRAVERSE, -1)
  for r, d in enumerate(order):
    z[r, :, d] = values[d]
  out = codec.decode(z.reshape(-1, mu.shape[1]).astype(np.float32))
  return [{}] * len(runs), {"traversal": _grid(ctx, out, TRAVERSE)}


def _labelled(ctx: Context) -> bool:
  return (ctx.is_image and bool(ctx.info.extras.get("num_classes"))
          and "classifier" in ctx.info.extras)


def arithmetic_codes(z: np.ndarray, labels: np.ndarray, a: int, b: int,
                     idx: np.ndarray) -> np.ndarray:
  """mean code of class a - mean code of class b + the codes z[idx] (of
  class b): what 'b -> a' should decode to."""
  return z[labels == a].mean(0) - z[labels == b].mean(0) + z[idx]


@register("arithmetic", "codec", _labelled, picture=True)
def arithmetic(ctx: Context, runs: Runs):
  """Latent arithmetic on the labelled held-out split: for each ordered
  pair of classes (a, b), mean code of a - mean code of b + the code of an
  example of b, decoded. `arithmetic_success`: the fraction the digit
  classifier calls a (up to 10 examples of b per pair; class means over
  the whole split). Picture: row b holds 4 examples of b and, right of
  them, each moved to a = b + 1."""
  split = ctx.split()
  x, labels = split["x"], split["label"]
  classes = [c for c in range(ctx.info.extras["num_classes"])
             if np.sum(labels == c) > 0]
  clf, vr = ctx.classifier(), ctx.info.value_range
  per_run, pics = [], {}
  pairs = [(a, b) for b in classes for a in classes if a != b]
  for i, codec in enumerate(runs):
    z = codec.encode(x)["mean"]
    codes, targets, shown = [], [], {}
    for a, b in pairs:  # all pairs decoded and classified at once
      idx = np.flatnonzero(labels == b)[:10]
      if a == classes[(classes.index(b) + 1) % len(classes)]:
        shown[b] = (idx[:4], sum(len(c) for c in codes))
      codes.append(arithmetic_codes(z, labels, a, b, idx))
      targets.append(np.full(len(idx), a))
    out = codec.decode(np.concatenate(codes).astype(np.float32))
    hits = np.sum(clf.predict(out, vr) == np.concatenate(targets))
    total = len(out)
    rows = []
    for b, (idx, start) in shown.items():
      k = len(idx)
      pad = np.full((4 - k, *x.shape[1:]), vr[0], np.float32)
      rows.append(np.concatenate([x[idx], pad, out[start:start + k], pad]))
    per_run.append({"arithmetic_success": float(hits / max(total, 1))})
    if i == 0 and rows:
      pics["arithmetic"] = _grid(ctx, np.concatenate(rows), 8)
  return per_run, pics


def importance_weighted_nll(codec: Codec, x: np.ndarray, k: int, chunk: int,
                            key: jax.Array, batch: int = 100):
  """Per-example -log p(x) estimated with k importance samples from q(z|x)
  (Burda et al. 2016: -log (1/k) sum_i p(x, z_i) / q(z_i|x)), drawn `chunk`
  at a time for `batch` examples at a time; and the matching Monte-Carlo
  -ELBO, -mean_i log w_i. Returns two (n,) arrays, in nats."""
  nll, nelbo = [], []
  for s in range(0, len(x), batch):
    xb = x[s:s + batch]
    acc = np.full(len(xb), -np.inf)
    total = np.zeros(len(xb))
    done = 0
    while done < k:
      c = min(chunk, k - done)
      lw = np.asarray(codec.log_weights(
          xb, jax.random.fold_in(key, s * k + done), c), np.float64)
      acc = np.logaddexp(acc, logsumexp(lw, axis=1))
      total += lw.sum(1)
      done += c
    nll.append(-(acc - np.log(k)))
    nelbo.append(-total / k)
  return np.concatenate(nll), np.concatenate(nelbo)


@register("nll", "codec", lambda ctx: ctx.stochastic)
def nll(ctx: Context, runs: Runs):
  """Held-out negative log-likelihood (nats per example), importance
  weighted with k = config.ae.nll_k samples at the final evaluation
  (nll_k_during before it; 0 skips), beside the Monte-Carlo -ELBO of the
  same samples (`nll_neg_elbo`) and k (`nll_k`)."""
  x = ctx.split()["x"]
  per_run = []
  for codec in runs:
    st = codec.settings
    k = st["nll_k"] if ctx.final else st["nll_k_during"]
    if k == 0:
      per_run.append({})
      continue
    a, b = importance_weighted_nll(codec, x, k, st["nll_chunk"],
                                   jax.random.key(4321))
    per_run.append({"nll": float(a.mean()), "nll_neg_elbo": float(b.mean()),
                    "nll_k": float(k)})
  return per_run, {}
