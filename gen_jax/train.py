"""The one training loop: init or resume, step, log, evaluate, checkpoint.

`train_and_evaluate(config, workdir)` is the public entry point for every
model; it returns the final metrics. Outputs in `workdir`: `config.json`,
`metrics.jsonl`, `checkpoints/`, `samples/step_NNNNNNN.png` and `wandb/`.
`setup(config)` builds what it compiles and runs (tests use it too). The
loop knows no trainer, network or seed count: it asks the trainer for its
layout (`trainers.base.Trainer`), and evaluation is `gen_jax.evaluators`.
"""

import dataclasses
import json
import os
import queue
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from gen_jax import (checkpoint, config_lib, data, evaluators, nonfinite,
                     parallel, plots, preemption, seeds, trainers)
from gen_jax import workdir as workdir_lib
from gen_jax import workdir_lock
from gen_jax.errors import Preempted
from gen_jax.logger import MetricLogger

# `init` runs once and is mostly random-number generation: XLA:CPU's
# backend optimisation level 1 compiles it 3-4x faster (DCGAN: 1.2 s against
# 4.4 s of CPU) to bitwise the same parameters (tests/test_train.py).
INIT_COMPILER_OPTIONS = {"xla_backend_optimization_level": 1}


def _in_background(fn) -> Future:
  """`fn()` on a thread of its own; the Future holds its result (or raises
  its exception). JAX settings a caller makes with context managers are
  thread-local and do not reach it (gen_jax makes none; `jax.config.update`
  does)."""
  pool = ThreadPoolExecutor(1)
  future = pool.submit(fn)
  pool.shutdown(wait=False)
  return future


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


@dataclasses.dataclass
class Setup:
  """Everything a run compiles and reads, built from its config before
  anything is compiled: the mesh, the dataset, the trainer (with the
  non-finite guard, and over N seeds when `train.num_seeds` > 1), the root
  key, the jitted `init` and `train_step` with the run's shardings (one
  compiled step per phase in `train_steps`, `train_step` the first; see
  `step_for`), and the evaluation. Tests use exactly what
  `train_and_evaluate` runs."""
  config: Any
  mesh: Any
  dataset: Any
  trainer: trainers.Trainer
  key: jax.Array
  init: Any
  train_step: Any
  evaluation: evaluators.Evaluation
  train_steps: tuple = ()

  @property
  def info(self):
    return self.dataset.info

  def step_for(self, step: int):
    """The compiled step that runs step `step` (counted from 0): that of
    the trainer's phase there."""
    return self.train_steps[self.trainer.phase_of(step)]

  def compile_step(self, step: int, state, batch) -> None:
    """Compiles the step that runs step `step` ahead of its first call, for
    `state` (arrays or ShapeDtypeStructs with the state's sharding) and
    `batch`; that call then finds it compiled."""
    self.train_steps[self.trainer.phase_of(step)].lower(state, batch).compile()

  def stream(self):
    return self.trainer.stream(self.dataset, self.config)

  def batch(self, stream) -> dict[str, jax.Array]:
    """The next step's global batch from `stream`."""
    local = self.trainer.local_batch(
        [next(stream) for _ in range(self.trainer.batches_per_step)])
    return self.trainer.global_batch(local, self.mesh)


def build_trainer(config, info, mesh) -> trainers.Trainer:
  """The config's trainer, wrapped: the non-finite guard around its step,
  then, with `train.num_seeds` = N > 1, N seeds vmapped (the guard acts per
  seed; the seed axis is sharded, so nothing inside a seed is)."""
  many = config.train.num_seeds > 1
  trainer = trainers.create(config, info, (lambda x: x) if many
                            else parallel.constrainer(mesh))
  trainer = nonfinite.Guarded(trainer, config.train.on_nonfinite)
  if many:
    trainer = seeds.SeedTrainer(trainer, seeds.seed_list(config), mesh)
  return trainer


def setup(config) -> Setup:
  """Checks `config` (ConfigError) and builds its `Setup`; compiles nothing."""
  config_lib.validate(config)
  mesh = parallel.make_mesh(config.mesh.shape, config.mesh.axes,
                            config.mesh.num_devices)
  dataset = data.get_dataset(config.data)
  trainers.TRAINERS.get(config.trainer).validate_data(config, dataset.info)
  trainer = build_trainer(config, dataset.info, mesh)
  trainer.check_mesh(config, mesh)
  state_sharding = trainer.state_sharding(mesh)
  init = jax.jit(trainer.init, out_shardings=state_sharding,
                 compiler_options=INIT_COMPILER_OPTIONS)
  # One program per phase, compiled when the phase is first reached.
  train_steps = tuple(jax.jit(
      trainer.phase_step(phase),
      in_shardings=(state_sharding, trainer.batch_sharding(mesh)),
      # Metrics: replicated scalars, or (N,) sharded like the seeds, so that
      # a many-seed step has no communication at all.
      out_shardings=(state_sharding, state_sharding),
      donate_argnums=0) for phase in range(trainer.num_phases))
  return Setup(config=config, mesh=mesh, dataset=dataset, trainer=trainer,
               key=trainer.root_key(config.seed), init=init,
               train_step=train_steps[0], train_steps=train_steps,
               evaluation=evaluators.Evaluation(config, trainer, dataset,
                                                mesh))


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


def evaluate(s: Setup, state, step: int, workdir: str,
             logger: MetricLogger) -> dict:
  """Runs the evaluators; writes their pictures (the sample picture as
  samples/step_NNNNNNN.png, others as samples/NAME_step_NNNNNNN.png) and,
  with `train.save_eval_samples`, the samples."""
  result = s.evaluation(state, s.trainer.eval_key(s.key), step)
  if jax.process_index() == 0:
    directory = os.path.join(workdir, "samples")
    for name, picture in result.pictures.items():
      prefix = "" if name == "samples" else f"{name}_"
      plots.save_png(os.path.join(directory, f"{prefix}step_{step:07d}.png"),
                     picture)
    if s.config.train.save_eval_samples and result.samples:
      _save_samples(s.trainer, result.samples,
                    os.path.join(directory, f"step_{step:07d}"))
    logger.images(step, result.pictures)
  return result.metrics


def _save_samples(trainer, runs: list[dict], path: str) -> None:
  """Unconditional: PATH.npy, (n, ...) or (N seeds, n, ...). Conditional:
  PATH.npz with `x` and `label` (the class each sample was drawn for)."""
  joined = {k: trainer.join_runs([r[k] for r in runs]) for k in runs[0]}
  if "label" in joined:
    plots.save_npz(path + ".npz", x=joined["x"].astype(np.float32),
                   label=joined["label"].astype(np.int32))
  else:
    plots.save_npy(path + ".npy", joined["x"])


def train_and_evaluate(config, workdir: str) -> dict[str, Any]:
  """Trains `config` in `workdir` (resuming if it holds a checkpoint).

  Returns the final metrics: the last logged training metrics and the final
  evaluation's `eval/...` metrics. Raises `Preempted` after saving a
  checkpoint on SIGTERM/SIGINT, `NonFiniteError` when training diverges with
  `config.train.on_nonfinite='stop'`, and `UserError` for bad input.
  """
  s = setup(config)  # checks the config; compiles nothing
  with workdir_lock.hold(workdir):  # one run per workdir; refuses a second
    return _train(s, config, workdir)


def _train(s: Setup, config, workdir: str) -> dict[str, Any]:
  workdir_lib.check(workdir, config)  # before anything is compiled or written
  trainer, mesh, t = s.trainer, s.mesh, config.train
  is_main = jax.process_index() == 0
  abstract = jax.eval_shape(trainer.init, s.key)
  workdir_lib.prepare(workdir, config, _nbytes(abstract))
  parallel.check_shared_directory(workdir)
  ckpt = checkpoint.Checkpointer(workdir_lib.checkpoint_dir(workdir),
                                 t.keep_checkpoints)
  logger = next_batch = bar = None
  # Signals are caught from here on; the loop saves and stops after a step.
  watcher = preemption.Watcher()
  try:
    stream = s.stream()
    window: list[dict] = []  # metrics of the steps since the last log
    sharding = trainer.state_sharding(mesh)
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
        abstract)
    restored = ckpt.restore_latest(abstract)
    if restored:
      step, state, data_state, loop_state = restored
      stream.set_state(data_state)
      window = _window_from_json(loop_state)
      if is_main:
        print(f"resuming {workdir} from step {step}", file=sys.stderr)
    else:
      step = 0
      # `init` compiles and runs on a thread while this one compiles the
      # first step (in the loop): XLA:CPU compiles most of a program on
      # one core, so the two overlap (the same programs, the same numbers).
      state = _in_background(lambda: s.init(s.key))

    skip = t.on_nonfinite == "skip"

    def produce():
      return s.batch(stream), stream.get_state()

    logger = MetricLogger(workdir, config, is_main, start_step=step)
    next_batch = _prefetch(produce)
    num_steps = t.num_steps
    final: dict[str, Any] = {}
    data_state = stream.get_state()
    bar = tqdm(total=num_steps, initial=step, disable=not is_main,
               desc=os.path.basename(os.path.abspath(workdir)), unit="step",
               dynamic_ncols=True)
    last_time, last_step = time.perf_counter(), step
    while step < num_steps:
      batch, data_state = next_batch()
      if isinstance(state, Future):  # a fresh run's first step
        s.compile_step(step, abstract, batch)
        state = state.result()
      state, metrics = s.step_for(step)(state, batch)
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
        train_metrics = trainer.summarize(
            trainer.runs(_window_metrics(window, skip)))
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
        eval_metrics = evaluate(s, state, step, workdir, logger)
        final.update(eval_metrics)
        logger.write(step, eval_metrics)
        last_time = time.perf_counter()  # evaluation is not training time
      if save:
        ckpt.save(step, state, data_state, _window_to_json(window))
      if stop:
        raise Preempted(step, watcher.signal_name)
    if not final:  # resumed a finished run: evaluate once more
      final.update(evaluate(s, state, step, workdir, logger))
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
  if is_main:
    print(json.dumps({k: round(v, 5) if isinstance(v, float) else v
                      for k, v in final.items()}))
  return final
