"""The one training loop: init or resume, step, log, evaluate, checkpoint.

`train_and_evaluate(config, workdir)` is the public entry point for every
model; it returns the final metrics. Outputs in `workdir`: `config.json`,
`metrics.jsonl`, `checkpoints/`, `samples/step_NNNNNNN.png` and `wandb/`.
"""

import json
import os
import queue
import threading
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from gen_jax import checkpoint, config_lib, data, parallel, plots, trainers
from gen_jax.errors import UserError
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


def prepare_workdir(workdir: str, config) -> None:
  """Creates the workdir and records the config it was started with."""
  try:
    os.makedirs(os.path.join(workdir, "samples"), exist_ok=True)
    path = os.path.join(workdir, "config.json")
    if jax.process_index() == 0 and not os.path.exists(path):
      with open(path + ".tmp", "w") as f:
        f.write(config.to_json_best_effort(indent=2, sort_keys=True))
      os.replace(path + ".tmp", path)
  except OSError as e:
    raise UserError(f"workdir {workdir!r} is not usable: {e.strerror}") from e


class _Run:
  """The pieces of one run, built before anything is compiled."""

  def __init__(self, config, workdir: str):
    config_lib.validate(config)
    self.config = config
    self.workdir = workdir
    self.mesh = parallel.make_mesh(config.mesh.shape, config.mesh.axes)
    parallel.check_batch_size(config.data.batch_size, self.mesh,
                              "config.data.batch_size")
    self.dataset = data.get_dataset(config.data)
    self.info = self.dataset.info
    self.trainer = trainers.create(config, self.info,
                                   parallel.constrainer(self.mesh))
    self.is_main = jax.process_index() == 0
    self.replicated = parallel.replicated(self.mesh)
    # Jitted once per run: evaluation reuses the compiled functions.
    self.sample = jax.jit(self.trainer.sample, static_argnums=2,
                          out_shardings=self.replicated)
    self.eval_batch = (jax.jit(self.trainer.eval_batch,
                               out_shardings=self.replicated)
                       if hasattr(self.trainer, "eval_batch") else None)

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
    return self.dataset.train_stream(
        seed=self.config.seed,
        local_batch_size=self.config.data.batch_size // jax.process_count(),
        process_index=jax.process_index(), process_count=jax.process_count())


def _stack(batches: list[dict]) -> dict:
  return {k: np.stack([b[k] for b in batches]) for k in batches[0]}


def _mean_metrics(history: list[dict]) -> dict[str, float]:
  host = jax.device_get(history)
  return {k: float(np.mean([h[k] for h in host])) for k in host[0]}


def evaluate(run: _Run, state, step: int, logger: MetricLogger) -> dict:
  """Samples, sample-quality metrics and held-out metrics; writes the PNG."""
  trainer, config, info = run.trainer, run.config, run.info
  key = jax.random.fold_in(jax.random.key(config.seed), 2**31 - 1)
  n = config.train.num_eval_samples
  n = -(-n // parallel.data_parallel_size(run.mesh)) * \
      parallel.data_parallel_size(run.mesh)
  samples = np.asarray(run.sample(state, key, n))[
      :config.train.num_eval_samples]
  real = run.reference(config.train.num_eval_samples)
  metrics = trainer.eval_metrics(samples, real)
  if run.eval_batch is not None:
    metrics.update(_held_out(run, state))
  metrics = {f"eval/{k}": v for k, v in metrics.items()}
  if run.is_main:
    if info.kind == "image":
      picture = plots.image_grid(samples[:GRID_SIZE], info.value_range,
                                 scale=max(1, 128 // info.example_shape[0]))
    else:
      title = ", ".join(f"{k[5:]} {v:.3g}" for k, v in metrics.items())
      picture = plots.scatter(samples, real, info.extras.get("modes"),
                              title=f"step {step}  {title}")
    plots.save_png(os.path.join(run.workdir, "samples",
                                f"step_{step:07d}.png"), picture)
    logger.images(step, {"samples": picture})
  return metrics


def _held_out(run: _Run, state) -> dict[str, float]:
  local = run.config.data.batch_size // jax.process_count()
  totals: dict[str, float] = {}
  for batch in run.dataset.eval_batches(
      local_batch_size=local, process_index=jax.process_index(),
      process_count=jax.process_count()):
    sums = jax.device_get(run.eval_batch(
        state, parallel.global_batch(batch, run.mesh)))
    for k, v in sums.items():
      totals[k] = totals.get(k, 0.0) + float(v)
  count = totals.pop("count", 0.0)
  return {k: v / max(count, 1.0) for k, v in totals.items()}


def train_and_evaluate(config, workdir: str) -> dict[str, Any]:
  """Trains `config` in `workdir` (resuming if it holds a checkpoint).

  Returns the final metrics: the last logged training metrics and the final
  evaluation's `eval/...` metrics.
  """
  run = _Run(config, workdir)
  prepare_workdir(workdir, config)
  trainer, mesh = run.trainer, run.mesh
  ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"),
                                 config.train.keep_checkpoints)

  init = jax.jit(trainer.init, out_shardings=run.replicated)
  key = jax.random.key(config.seed)
  stream = run.stream()
  step = ckpt.latest_step() or 0
  if step:
    target = jax.eval_shape(trainer.init, key)
    target = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype,
                                       sharding=run.replicated), target)
    state, data_state = ckpt.restore(step, target)
    stream.set_state(data_state)
  else:
    state = init(key)

  train_step = jax.jit(
      trainer.train_step,
      in_shardings=(run.replicated, parallel.batch_sharding(mesh, 1)),
      out_shardings=(run.replicated, run.replicated), donate_argnums=0)

  def produce():
    local = _stack([next(stream) for _ in range(trainer.batches_per_step)])
    return parallel.global_batch(local, mesh, leading=1), stream.get_state()

  logger = MetricLogger(workdir, config, run.is_main, start_step=step)
  next_batch = _prefetch(produce)
  num_steps = config.train.num_steps
  history: list[dict] = []
  final: dict[str, Any] = {}
  data_state = stream.get_state()
  bar = tqdm(total=num_steps, initial=step, disable=not run.is_main,
             desc=os.path.basename(os.path.abspath(workdir)), unit="step",
             dynamic_ncols=True)
  last_time, last_step = time.perf_counter(), step
  try:
    while step < num_steps:
      batch, data_state = next_batch()
      state, metrics = train_step(state, batch)
      history.append(metrics)
      step += 1
      bar.update(1)
      done = step == num_steps
      if step % config.train.log_every == 0 or done:
        train_metrics = _mean_metrics(history)
        history = []
        now = time.perf_counter()
        train_metrics["steps_per_sec"] = (step - last_step) / (now - last_time)
        last_time, last_step = now, step
        final.update(train_metrics)
        logger.write(step, train_metrics)
        bar.set_postfix({k: f"{v:.3g}" for k, v in train_metrics.items()
                         if k != "steps_per_sec"}, refresh=False)
      if step % config.train.eval_every == 0 or done:
        eval_metrics = evaluate(run, state, step, logger)
        final.update(eval_metrics)
        logger.write(step, eval_metrics)
        last_time = time.perf_counter()  # evaluation is not training time
      if step % config.train.checkpoint_every == 0 or done:
        ckpt.save(step, state, data_state)
    if not final:  # resumed a finished run: evaluate once more
      final.update(evaluate(run, state, step, logger))
    final["step"] = step
    logger.summary(final)
  finally:
    next_batch.stop()
    bar.close()
    ckpt.wait()
    ckpt.close()
    logger.close()
  if run.is_main:
    print(json.dumps({k: round(v, 5) if isinstance(v, float) else v
                      for k, v in final.items()}))
  return final
