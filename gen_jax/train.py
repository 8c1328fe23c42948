"""The one training loop: init or resume, step, log, evaluate, checkpoint.

`train_and_evaluate(config, workdir)` is the public entry point for every
model; it returns the final metrics. Outputs in `workdir`: `config.json`,
`metrics.jsonl`, `checkpoints/`, `samples/step_NNNNNNN.png` and `wandb/`.
With `config.train.num_seeds = N > 1` the same loop trains N seeds at once
(see seeds.py): state and batches gain a leading seed axis.
"""

import json
import os
import queue
import sys
import threading
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from gen_jax import (checkpoint, config_lib, data, nonfinite, parallel, plots,
                     preemption, seeds, trainers)
from gen_jax import workdir as workdir_lib
from gen_jax import workdir_lock
from gen_jax.errors import Preempted
from gen_jax.logger import MetricLogger

GRID_SIZE = 64


def _prefetch(produce, size: int = 2):
  """Runs `produce()` in a background thread, `size` items ahead."""
  q: queue.Queue = queue.Queue(maxsize=size)
  stop = threading.Event()

  def worker():
    try:
      while not stop.is_set():
        q.put(produce())
    except Exception as e:  # noqa: BLE001 -- re-raised in the main thread
      q.put(e)

  threading.Thread(target=worker, daemon=True).start()

  def get():
    item = q.get()
    if isinstance(item, Exception):
      raise item
    return item
  get.stop = stop.set
  return get


class _Run:
  """The pieces of one run, built before anything is compiled."""

  def __init__(self, config, workdir: str):
    config_lib.validate(config)
    self.config = config
    self.workdir = workdir
    self.mesh = parallel.make_mesh(config.mesh.shape, config.mesh.axes,
                                   config.mesh.num_devices)
    self.dataset = data.get_dataset(config.data)
    self.info = self.dataset.info
    self.is_main = jax.process_index() == 0
    self.replicated = parallel.replicated(self.mesh)
    self.seeds = seeds.seed_list(config)
    self.multi_seed = len(self.seeds) > 1
    if self.multi_seed:  # seeds sharded over devices, a seed's batch is not
      parallel.check_batch_size(len(self.seeds), self.mesh,
                                "config.train.num_seeds")
      self.trainer = seeds.SeedTrainer(trainers.create(config, self.info),
                                       self.seeds)
      self.key = seeds.keys(self.seeds)
      self.state_sharding = parallel.batch_sharding(self.mesh)
      self.batch_leading = 0  # batches (N, n_critic, B, ...)
    else:
      parallel.check_batch_size(config.data.batch_size, self.mesh,
                                "config.data.batch_size")
      self.trainer = trainers.create(config, self.info,
                                     parallel.constrainer(self.mesh))
      self.key = jax.random.key(config.seed)
      self.state_sharding = self.replicated
      self.batch_leading = 1  # batches (n_critic, B, ...)
    # Jitted once per run: evaluation reuses the compiled functions.
    self.sample = jax.jit(self.trainer.sample, static_argnums=2,
                          out_shardings=self.replicated)
    self.eval_batch = (jax.jit(self.trainer.eval_batch,
                               out_shardings=self.replicated)
                       if hasattr(self.trainer, "eval_batch") else None)

  def eval_key(self) -> jax.Array:
    fold = lambda k: jax.random.fold_in(k, 2**31 - 1)
    return jax.vmap(fold)(self.key) if self.multi_seed else fold(self.key)

  def summarize(self, metrics: dict) -> dict:
    """Per-seed values -> mean, standard error and one entry per seed."""
    return seeds.summarize(metrics, self.seeds) if self.multi_seed else metrics

  def reference(self, n: int) -> np.ndarray:
    """Up to n held-out examples (all processes read the whole split)."""
    if not hasattr(self, "_reference"):
      parts, count = [], 0
      for batch in self.dataset.eval_batches(local_batch_size=min(n, 1000),
                                             process_index=0, process_count=1):
        x = batch["x"][batch["mask"] > 0]
        parts.append(x)
        count += len(x)
        if count >= n:
          break
      self._reference = np.concatenate(parts)[:n]
    return self._reference

  def stream(self):
    if self.multi_seed:
      return seeds.SeedStreams(self.dataset, self.seeds,
                               self.config.data.batch_size,
                               jax.process_index(), jax.process_count())
    return self.dataset.train_stream(
        seed=self.config.seed,
        local_batch_size=self.config.data.batch_size // jax.process_count(),
        process_index=jax.process_index(), process_count=jax.process_count())


def _stack(batches: list[dict]) -> dict:
  return {k: np.stack([b[k] for b in batches]) for k in batches[0]}


def _window_metrics(window: list[dict], skip: bool) -> dict[str, Any]:
  """Means over the steps since the last log (host values): floats, or (N,)
  arrays over seeds. With skip, the means are over the kept updates and
  `skipped` counts the dropped ones."""
  flags = np.stack([np.asarray(w[nonfinite.FLAG]) for w in window]) > 0
  out: dict[str, Any] = {}
  for k in window[0]:
    if k == nonfinite.FLAG:
      continue
    v = np.stack([np.asarray(w[k]) for w in window])
    if skip:
      keep = ~flags
      with np.errstate(invalid="ignore", divide="ignore"):
        m = np.where(keep, v, 0).sum(0) / keep.sum(0)
    else:
      m = v.mean(0)
    out[k] = float(m) if np.ndim(m) == 0 else m
  if skip:
    skipped = flags.sum(0)
    out["skipped"] = int(skipped) if np.ndim(skipped) == 0 else skipped
  return out


def _window_to_json(window: list[dict]) -> dict:
  """The unlogged steps' metrics, exactly (floats round-trip through JSON),
  so that the first log after a resume averages the same values."""
  names = list(window[0]) if window else []
  return {"window": {
      "names": names,
      "dtypes": [str(np.asarray(window[0][k]).dtype) for k in names],
      "values": [[np.asarray(w[k]).tolist() for k in names]
                 for w in window]}}


def _window_from_json(loop_state: dict) -> list[dict]:
  w = loop_state.get("window", {"names": [], "dtypes": [], "values": []})
  dtypes = [jnp.dtype(d) for d in w["dtypes"]]
  return [{k: np.asarray(v, d) for k, d, v in zip(w["names"], dtypes, row)}
          for row in w["values"]]


def _nbytes(tree) -> int:
  return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree)
             if not jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key))


def evaluate(run: _Run, state, step: int, logger: MetricLogger) -> dict:
  """Samples, sample-quality metrics and held-out metrics; writes the PNG."""
  trainer, config = run.trainer, run.config
  num = config.train.num_eval_samples
  n = num
  if not run.multi_seed:  # the sample batch is sharded over the data axis
    n = -(-n // parallel.data_parallel_size(run.mesh)) * \
        parallel.data_parallel_size(run.mesh)
  samples = np.asarray(run.sample(state, run.eval_key(), n))
  samples = samples[:, :num] if run.multi_seed else samples[:num]
  real = run.reference(num)
  metrics = trainer.eval_metrics(samples, real)
  if run.eval_batch is not None:
    metrics.update(_held_out(run, state))
  metrics = {f"eval/{k}": v for k, v in metrics.items()}
  if run.is_main:
    picture = _picture(run, samples, real, metrics, step)
    path = os.path.join(run.workdir, "samples", f"step_{step:07d}")
    plots.save_png(path + ".png", picture)
    if config.train.save_eval_samples:
      plots.save_npy(path + ".npy", samples)
    logger.images(step, {"samples": picture})
  return run.summarize(metrics)


def _picture(run: _Run, samples: np.ndarray, real: np.ndarray,
             metrics: dict, step: int) -> np.ndarray:
  """A sample grid or scatter plot; with seeds, one row/panel per seed."""
  info = run.info
  scale = max(1, 128 // info.example_shape[0]) if info.kind == "image" else 1
  titles = lambda i: ", ".join(f"{k[5:]} {np.ravel(v)[i]:.3g}"
                               for k, v in metrics.items())
  if not run.multi_seed:
    if info.kind == "image":
      return plots.image_grid(samples[:GRID_SIZE], info.value_range,
                              scale=scale)
    return plots.scatter(samples, real, info.extras.get("modes"),
                         title=f"step {step}  {titles(0)}")
  if info.kind == "image":  # row i: seed i's first samples
    per_row = 8
    return plots.image_grid(samples[:, :per_row].reshape(
        -1, *samples.shape[2:]), info.value_range, columns=per_row,
        scale=max(1, scale // 2))
  return plots.scatter_grid(
      samples, real, info.extras.get("modes"),
      [f"seed {s}: {titles(i)}" for i, s in enumerate(run.seeds)],
      suptitle=f"step {step}")


def _held_out(run: _Run, state) -> dict[str, float]:
  # With seeds, every process reads whole batches, shared by all seeds.
  processes = 1 if run.multi_seed else jax.process_count()
  local = run.config.data.batch_size // processes
  totals: dict[str, Any] = {}
  for batch in run.dataset.eval_batches(
      local_batch_size=local, process_index=jax.process_index() % processes,
      process_count=processes):
    batch = (jax.device_put(batch, run.replicated) if run.multi_seed
             else parallel.global_batch(batch, run.mesh))
    sums = jax.device_get(run.eval_batch(state, batch))
    for k, v in sums.items():
      totals[k] = totals.get(k, 0.0) + np.asarray(v, np.float64)
  count = np.maximum(totals.pop("count", 0.0), 1.0)
  means = {k: v / count for k, v in totals.items()}
  return {k: float(v) if np.ndim(v) == 0 else v for k, v in means.items()}


def _guarded_step(run: _Run, on_nonfinite: str):
  """The train step with the non-finite guard, per seed with many seeds."""
  if run.multi_seed:
    return jax.vmap(nonfinite.guard(run.trainer.inner.train_step,
                                    on_nonfinite))
  return nonfinite.guard(run.trainer.train_step, on_nonfinite)


def jit_train_step(run: _Run, step=None):
  """`step` (default: the trainer's) compiled with the run's shardings:
  `parallel.jit_train_step`'s, with a leading seed axis when there are many
  seeds. Donates the state."""
  return jax.jit(
      step or run.trainer.train_step,
      in_shardings=(run.state_sharding,
                    parallel.batch_sharding(run.mesh, run.batch_leading)),
      # Metrics: replicated scalars, or (N,) sharded like the seeds, so that
      # a many-seed step has no communication at all.
      out_shardings=(run.state_sharding, run.state_sharding),
      donate_argnums=0)


def train_and_evaluate(config, workdir: str) -> dict[str, Any]:
  """Trains `config` in `workdir` (resuming if it holds a checkpoint).

  Returns the final metrics: the last logged training metrics and the final
  evaluation's `eval/...` metrics. Raises `Preempted` after saving a
  checkpoint on SIGTERM/SIGINT, `NonFiniteError` when training diverges with
  `config.train.on_nonfinite='stop'`, and `UserError` for bad input.
  """
  run = _Run(config, workdir)  # checks the config; compiles nothing
  with workdir_lock.hold(workdir):  # one run per workdir; refuses a second
    return _train(run, config, workdir)


def _train(run: _Run, config, workdir: str) -> dict[str, Any]:
  workdir_lib.check(workdir, config)  # before anything is compiled or written
  trainer, mesh, t = run.trainer, run.mesh, config.train
  abstract = jax.eval_shape(trainer.init, run.key)
  workdir_lib.prepare(workdir, config, _nbytes(abstract))
  parallel.check_shared_directory(workdir)
  ckpt = checkpoint.Checkpointer(workdir_lib.checkpoint_dir(workdir),
                                 t.keep_checkpoints)
  logger = next_batch = bar = None
  # Signals are caught from here on; the loop saves and stops after a step.
  watcher = preemption.Watcher()
  try:
    stream = run.stream()
    window: list[dict] = []  # metrics of the steps since the last log
    restored = ckpt.restore_latest(jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype,
                                       sharding=run.state_sharding), abstract))
    if restored:
      step, state, data_state, loop_state = restored
      stream.set_state(data_state)
      window = _window_from_json(loop_state)
      if run.is_main:
        print(f"resuming {workdir} from step {step}", file=sys.stderr)
    else:
      step = 0
      state = jax.jit(trainer.init, out_shardings=run.state_sharding)(run.key)

    skip = t.on_nonfinite == "skip"
    train_step = jit_train_step(run, _guarded_step(run, t.on_nonfinite))

    def produce():
      local = _stack([next(stream) for _ in range(trainer.batches_per_step)])
      if run.multi_seed:  # (n_critic, seeds, B, ...) -> (seeds, n_critic, ...)
        local = {k: np.swapaxes(v, 0, 1) for k, v in local.items()}
      return (parallel.global_batch(local, mesh, leading=run.batch_leading),
              stream.get_state())

    logger = MetricLogger(workdir, config, run.is_main, start_step=step)
    next_batch = _prefetch(produce)
    num_steps = t.num_steps
    final: dict[str, Any] = {}
    data_state = stream.get_state()
    bar = tqdm(total=num_steps, initial=step, disable=not run.is_main,
               desc=os.path.basename(os.path.abspath(workdir)), unit="step",
               dynamic_ncols=True)
    last_time, last_step = time.perf_counter(), step
    while step < num_steps:
      batch, data_state = next_batch()
      state, metrics = train_step(state, batch)
      window.append(metrics)
      step += 1
      bar.update(1)
      done = step == num_steps
      stop = watcher.reached(step) and not done
      log = step % t.log_every == 0 or done
      do_eval = step % t.eval_every == 0 or done
      save = step % t.checkpoint_every == 0 or done or stop
      if log or do_eval or save:
        # The only host syncs: every step before a log, evaluation or save
        # is checked, so no NaN state is evaluated or saved.
        window = jax.device_get(window)
        nonfinite.check(window, step, t.on_nonfinite)
      if log:
        train_metrics = run.summarize(_window_metrics(window, skip))
        window = []
        now = time.perf_counter()
        train_metrics["steps_per_sec"] = (step - last_step) / (now - last_time)
        last_time, last_step = now, step
        final.update(train_metrics)
        logger.write(step, train_metrics)
        bar.set_postfix({k: f"{v:.3g}" for k, v in train_metrics.items()
                         if k != "steps_per_sec" and "/seed_" not in k
                         and not k.endswith("_se")}, refresh=False)
      if do_eval:
        eval_metrics = evaluate(run, state, step, logger)
        final.update(eval_metrics)
        logger.write(step, eval_metrics)
        last_time = time.perf_counter()  # evaluation is not training time
      if save:
        ckpt.save(step, state, data_state, _window_to_json(window))
      if stop:
        raise Preempted(step, watcher.signal_name)
    if not final:  # resumed a finished run: evaluate once more
      final.update(evaluate(run, state, step, logger))
    final["step"] = step
    logger.summary(final)
  finally:
    watcher.close()
    if next_batch is not None:
      next_batch.stop()
    if bar is not None:
      bar.close()
    ckpt.wait()
    ckpt.close()
    if logger is not None:
      logger.close()
  if run.is_main:
    print(json.dumps({k: round(v, 5) if isinstance(v, float) else v
                      for k, v in final.items()}))
  return final
