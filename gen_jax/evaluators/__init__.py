"""Evaluators: metrics and pictures from what a trainer produces.

`config.evals` names the evaluators to run at every evaluation ('default':
every registered evaluator that suits the dataset and the trainer, see
`applies`). They live outside the trainers and the loop: a trainer exposes
`sample(state, key, n)` and optionally `held_out(state, batch)` and the
codec functions (`encode`, `decode`, `corrupt`, `log_weights`: see
`base.Codec`); `Evaluation` jits those once, draws the samples once per
evaluation, hands every evaluator the outputs of each run, and returns the
metrics (`eval/NAME`), the pictures and the samples for the loop to write.

A trainer whose samples are functions of data (every image-to-image
translator: Pix2Pix, SRGAN, CycleGAN) sets `takes_inputs = True`: its
`sample(state, key, n, inputs)` gets n held-out examples `inputs` (`{'x',
'cond'?, 'label'?, 'cond_label'?}`, the split's first n, cycled when it has
fewer; a later chunk of `Context.draw` the next n), and returns them with
its outputs as it sees fit. Such a trainer needs no prior
(`has_prior = False`) for the sample evaluators to apply. A trainer whose
samples hold more than 'x' (and 'label') lists their keys in `sample_keys`
(`Context.sample_keys`: a paired translator's 'cond', 'target'; CycleGAN's
sources and cycles), so evaluators of those outputs know they apply.

Adding one: a function in a module here, registered with
`@register(name, needs, applies)`, and a test.
"""

import dataclasses
from typing import Any

import jax
import numpy as np

from gen_jax import parallel
from gen_jax.errors import ConfigError
from gen_jax.evaluators import (  # noqa: F401
    cycle, held_out, inception, latent, pictures, sample_metrics,
    translation)
from gen_jax.evaluators.base import EVALUATORS, Codec, Context, register

__all__ = ["EVALUATORS", "Codec", "Context", "Evaluation", "check_names",
           "register", "resolve", "usable"]

DEFAULT = "default"
# What the reference and the split keep of an eval batch: the example, its
# label, a translation dataset's source image and the source's label.
EXAMPLE_KEYS = ("x", "label", "cond", "cond_label")


def check_names(names) -> None:
  """ConfigError unless every name is registered (or 'default')."""
  if isinstance(names, str):
    raise ConfigError(f"config.evals={names!r} must be a tuple of names, "
                      f"e.g. ('{names}',)")
  for name in names:
    if name != DEFAULT:
      EVALUATORS.get(name)


def usable(name: str, ctx: Context) -> bool:
  """Whether evaluator `name` can run here: its own `applies`, and what it
  needs exists (samples need a prior or held-out inputs, a codec an
  encoder)."""
  ev = EVALUATORS.get(name)
  if ev.needs == "samples" and not (ctx.has_prior or ctx.takes_inputs):
    return False
  if ev.needs == "codec" and not ctx.has_codec:
    return False
  return ev.applies(ctx)


def resolve(names, ctx: Context) -> list[str]:
  """The evaluators to run, metric evaluators first, then pictures.

  'default' adds every evaluator whose `in_default` holds (by default: that
  applies); a name given explicitly that cannot run here is a ConfigError
  naming what can.
  """
  chosen: list[str] = []
  for name in names:
    if name == DEFAULT:
      chosen += [n for n in EVALUATORS
                 if usable(n, ctx) and EVALUATORS.get(n).in_default(ctx)]
      continue
    if not usable(name, ctx):
      ok = [n for n in EVALUATORS if usable(n, ctx)]
      raise ConfigError(
          f"config.evals: {name!r} does not apply to {ctx.info.name!r} with "
          f"this trainer; these do: {', '.join(ok)}")
    chosen.append(name)
  chosen = list(dict.fromkeys(chosen))
  return sorted(chosen, key=lambda n: EVALUATORS.get(n).picture)


@dataclasses.dataclass
class Result:
  metrics: dict[str, Any]          # eval/NAME, summarised over runs
  pictures: dict[str, np.ndarray]  # name -> RGB uint8
  samples: list[dict[str, np.ndarray]] | None  # per run, or None


class Evaluation:
  """The evaluation of one run (or of N seeds), built before compiling."""

  def __init__(self, config, trainer, dataset, mesh):
    self.config, self.trainer, self.dataset, self.mesh = (config, trainer,
                                                          dataset, mesh)
    self._reference = self._split = None
    self.ctx = Context(
        info=trainer.info, conditional=trainer.conditional,
        num_classes=getattr(trainer, "num_classes", 0),
        has_held_out=hasattr(trainer, "held_out"),
        run_names=trainer.run_names(), reference=self.reference,
        config=config, mesh=mesh, dataset=dataset,
        split=self.split, has_prior=getattr(trainer, "has_prior", True),
        has_codec=hasattr(trainer, "encode"),
        stochastic=getattr(trainer, "stochastic", False),
        takes_inputs=getattr(trainer, "takes_inputs", False),
        sample_keys=tuple(getattr(trainer, "sample_keys", ())))
    self.names = resolve(config.evals, self.ctx)
    for name in self.names:
      if EVALUATORS.get(name).prepare is not None:
        EVALUATORS.get(name).prepare(self.ctx)
    needs = {EVALUATORS.get(n).needs for n in self.names}
    rep = parallel.replicated(mesh)
    # Jitted once per run: every evaluation reuses the compiled functions.
    self.sample = (jax.jit(trainer.sample, static_argnums=2, out_shardings=rep)
                   if "samples" in needs else None)
    self.held_out = (jax.jit(trainer.held_out, out_shardings=rep)
                     if "held_out" in needs else None)
    self.codec = None
    if "codec" in needs:
      self.codec = {
          "encode": jax.jit(trainer.encode),
          "decode": jax.jit(trainer.decode),
          "corrupt": (jax.jit(trainer.corrupt)
                      if getattr(trainer, "denoising", False) else None),
          "log_weights": (jax.jit(trainer.log_weights, static_argnums=3)
                          if self.ctx.stochastic else None)}

  def split(self) -> dict[str, np.ndarray]:
    """The whole held-out split {'x', 'label'?} (every process reads it)."""
    if self._split is None:
      parts: dict[str, list] = {}
      for batch in self.dataset.eval_batches(local_batch_size=1000,
                                             process_index=0,
                                             process_count=1):
        keep = batch["mask"] > 0
        for k in EXAMPLE_KEYS:
          if k in batch:
            parts.setdefault(k, []).append(batch[k][keep])
      self._split = {k: np.concatenate(v) for k, v in parts.items()}
    return self._split

  def _codecs(self, state) -> list[Codec]:
    """One Codec per run, bound to that run's state."""
    f = self.codec
    get = lambda x: jax.tree.map(np.asarray, jax.device_get(x))
    out = []
    for i in range(self.trainer.num_runs):
      s = self.trainer.run_state(state, i)
      key = jax.random.key(1234)  # the same corruption at every evaluation
      out.append(Codec(
          encode=lambda x, s=s: get(f["encode"](s, x)),
          decode=lambda z, s=s: get(f["decode"](s, z)),
          corrupt=(None if f["corrupt"] is None
                   else lambda x: get(f["corrupt"](x, key))),
          log_weights=(None if f["log_weights"] is None
                       else lambda x, k, n, s=s: get(
                           f["log_weights"](s, x, k, n))),
          settings=dict(getattr(self.trainer, "codec_settings", {}))))
    return out

  def reference(self) -> dict[str, np.ndarray]:
    """Up to num_eval_samples held-out examples {'x', 'label'?} (every
    process reads the whole split)."""
    if self._reference is None:
      n = self.config.train.num_eval_samples
      parts: dict[str, list] = {}
      count = 0
      for batch in self.dataset.eval_batches(local_batch_size=min(n, 1000),
                                             process_index=0,
                                             process_count=1):
        keep = batch["mask"] > 0
        for k in EXAMPLE_KEYS:
          if k in batch:
            parts.setdefault(k, []).append(batch[k][keep])
        count += int(keep.sum())
        if count >= n:
          break
      self._reference = {k: np.concatenate(v)[:n] for k, v in parts.items()}
    return self._reference

  def _inputs(self, n: int, chunk: int) -> tuple:
    """() or, for a trainer that `takes_inputs`, (n held-out examples,):
    chunk i holds examples i*n .. (i+1)*n - 1 of the split, cycled."""
    if not getattr(self.trainer, "takes_inputs", False):
      return ()
    split = self.split()
    idx = (np.arange(n) + chunk * n) % len(split["x"])
    return ({k: v[idx] for k, v in split.items()},)

  def _samples(self, state, key) -> list[dict[str, np.ndarray]]:
    num = self.config.train.num_eval_samples
    n = self.trainer.sample_count(num, self.mesh)
    out = jax.device_get(self.sample(state, key, n, *self._inputs(n, 0)))
    return [{k: np.asarray(v)[:num] for k, v in r.items()}
            for r in self.trainer.runs(out)]

  def _draw(self, state, key, first, n: int):
    """`Context.draw`: `first` (the evaluation's samples), then draws of the
    compiled size with keys folded from `key`, until n per run."""
    size = self.trainer.sample_count(self.config.train.num_eval_samples,
                                     self.mesh)
    left, i, chunk = n, 0, first
    while left > 0:
      if chunk is None:
        i += 1
        chunk = self.trainer.runs(jax.device_get(
            self.sample(state, _fold_in(key, i), size,
                        *self._inputs(size, i))))
      chunk = [{k: np.asarray(v)[:left] for k, v in r.items()} for r in chunk]
      left -= len(chunk[0]["x"])
      yield chunk
      chunk = None

  def _held_out(self, state) -> list[dict[str, np.ndarray]]:
    processes = self.trainer.held_out_processes()
    local = self.config.data.batch_size // processes
    totals: dict[str, Any] = {}
    for batch in self.dataset.eval_batches(
        local_batch_size=local,
        process_index=jax.process_index() % processes,
        process_count=processes):
      sums = jax.device_get(self.held_out(
          state, self.trainer.held_out_batch(batch, self.mesh)))
      for k, v in sums.items():
        totals[k] = totals.get(k, 0.0) + np.asarray(v, np.float64)
    count = np.maximum(totals.pop("count", 0.0), 1.0)
    return self.trainer.runs({k: v / count for k, v in totals.items()})

  def __call__(self, state, key, step: int) -> Result:
    outputs = {}
    if self.sample is not None:
      outputs["samples"] = self._samples(state, key)
      self.ctx.draw = lambda n: self._draw(state, key, outputs["samples"], n)
    if self.held_out is not None:
      outputs["held_out"] = self._held_out(state)
    if self.codec is not None:
      outputs["codec"] = self._codecs(state)
    runs = self.trainer.num_runs
    self.ctx.step = step
    self.ctx.final = step >= self.config.train.num_steps
    self.ctx.metrics = [{} for _ in range(runs)]
    images: dict[str, np.ndarray] = {}
    for name in self.names:
      ev = EVALUATORS.get(name)
      per_run, pics = ev.fn(self.ctx, outputs[ev.needs])
      for mine, theirs in zip(self.ctx.metrics, per_run):
        mine.update(theirs)
      images.update(pics)
    metrics = self.trainer.summarize(
        [{f"eval/{k}": v for k, v in m.items()} for m in self.ctx.metrics])
    self.ctx.draw = None  # holds the state
    return Result(metrics, images, outputs.get("samples"))


def _fold_in(key, i: int):
  """fold_in over a key or a batch of keys (one per seed)."""
  fold = lambda k: jax.random.fold_in(k, i)
  typed = jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
  for _ in range(key.ndim - (0 if typed else 1)):
    fold = jax.vmap(fold)
  return fold(key)
