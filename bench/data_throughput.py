r"""Does the input pipeline keep up with training? DCGAN step time, two ways.

    PYTHONPATH=. python bench/data_throughput.py [--config=mnist] [--steps=30]

Times the compiled DCGAN step (configs/dcgan.py:CONFIG) fed
  device: one batch already on the device, reused every step (no input cost);
  loader: batches from the real TFDS/grain loader, through the training loop's
          own path (background thread, `next(stream)`, `get_state`,
          `jax.make_array_from_process_local_data`),
and prints the ratio loader/device (target <= 1.05). Data come from
`tfds.testing.mock_data` (random MNIST-shaped records; the per-example read
cost of a real array_record file is of the same order), so nothing needs to be
prepared. Also prints the loader alone, in ms per batch. The two modes are
interleaved over `--repeats` rounds and the median step times compared,
because shared machines drift.
"""

import argparse
import importlib.util
import json
import os
import statistics
import time

import jax

from gen_jax import data, train
from gen_jax.data.testing import mock_tfds

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_config(arg: str):
  path = os.path.join(ROOT, "configs", "dcgan.py")
  spec = importlib.util.spec_from_file_location("dcgan_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def time_steps(step_fn, state, next_batch, steps: int):
  """Per-step seconds: fetch the batch, run the step, wait for its result.

  Waiting on every step costs both modes the same and gives one duration per
  step, whose median shrugs off bursts from other jobs on a shared machine.
  """
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    state, metrics = step_fn(state, next_batch())
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - start)
  return state, times


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", default="mnist",
                      help="argument of configs/dcgan.py: mnist, or "
                      "mnist,small for the tiny model (a harder test: its "
                      "step is shorter)")
  parser.add_argument("--steps", type=int, default=30)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--num_examples", type=int, default=10_000)
  parser.add_argument("--batch_size", type=int, default=None,
                      help="config.data.batch_size (default: the config's)")
  parser.add_argument("--num_threads", type=int, default=None,
                      help="config.data.num_threads (default: the config's)")
  args = parser.parse_args()

  config = load_config(args.config)
  if args.batch_size is not None:
    config.data.batch_size = args.batch_size
  if args.num_threads is not None:
    config.data.num_threads = args.num_threads
  with mock_tfds(num_examples=args.num_examples):
    s = train.setup(config)  # the loop's own construction and compiled step
    stream = s.stream()

    def produce():  # as in train.train_and_evaluate
      return s.batch(stream), stream.get_state()

    step = s.train_step
    state = s.init(jax.random.key(0))
    fixed, _ = produce()
    state, _ = time_steps(step, state, lambda: fixed, 3)  # compile, warm up

    # The loader alone, decoding on `next()` (no threads, no prefetch).
    sync_config = config.data.copy_and_resolve_references()
    sync_config.num_threads = sync_config.prefetch = 0
    sync = data.get_dataset(sync_config).train_stream(
        seed=0, local_batch_size=config.data.batch_size, process_index=0,
        process_count=1)
    next(sync)
    start = time.perf_counter()
    for _ in range(args.steps):
      next(sync)
    loader_ms = (time.perf_counter() - start) / args.steps * 1e3

    next_batch = train._prefetch(produce)  # the loop's background thread
    device, loader = [], []
    try:
      for _ in range(args.repeats):
        state, t = time_steps(step, state, lambda: fixed, args.steps)
        device.extend(t)
        state, t = time_steps(step, state, lambda: next_batch()[0],
                              args.steps)
        loader.extend(t)
    finally:
      next_batch.stop()
  result = {
      "config": f"configs/dcgan.py:{args.config}",
      "batch": config.data.batch_size,
      "image_size": config.data.image_size,
      "backend": jax.default_backend(),
      "device": str(jax.devices()[0].device_kind),
      "loader_ms_per_batch": round(loader_ms, 3),
      "device_step_ms": round(statistics.median(device) * 1e3, 3),
      "loader_step_ms": round(statistics.median(loader) * 1e3, 3),
      "ratio": round(statistics.median(loader) / statistics.median(device), 4),
      "steps_timed": len(device),
  }
  print(json.dumps(result))


if __name__ == "__main__":
  main()
