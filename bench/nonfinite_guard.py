"""Cost of the NaN/Inf guard (gen_jax/nonfinite.py) on one compiled train step.

  PYTHONPATH=. python bench/nonfinite_guard.py [--config=dcgan.py:digits]
      [--repeats=30]

Times the step as the loop compiles it (replicated state, donated, batch
sharded on the mesh) without the guard, with `on_nonfinite=stop` (finiteness
flag only) and with `skip` (flag plus keeping the old state), interleaved, on
the same batch. Results: bench/RESULTS_reliab.md.
"""

import argparse
import importlib.util
import os

import jax

from bench.timing import interleaved, load_average, median_ms, spread_ms
from gen_jax import data, nonfinite, parallel, trainers


def load(spec: str):
  path, _, arg = spec.partition(":")
  module_spec = importlib.util.spec_from_file_location(
      "bench_config", os.path.join("configs", path))
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg or None)


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--config", default="dcgan.py:digits")
  parser.add_argument("--repeats", type=int, default=30)
  args = parser.parse_args()
  config = load(args.config)
  mesh = parallel.make_mesh(config.mesh.shape, config.mesh.axes)
  dataset = data.get_dataset(config.data)
  trainer = trainers.create(config, dataset.info, parallel.constrainer(mesh))
  replicated = parallel.replicated(mesh)
  stream = dataset.train_stream(seed=0, local_batch_size=config.data.batch_size,
                                process_index=0, process_count=1)
  local = {k: v[None] for k, v in next(stream).items()}
  local = {k: v.repeat(trainer.batches_per_step, 0) for k, v in local.items()}
  batch = parallel.global_batch(local, mesh, leading=1)

  def compiled(step_fn):
    step = jax.jit(step_fn, in_shardings=(replicated,
                                          parallel.batch_sharding(mesh, 1)),
                   out_shardings=(replicated, replicated), donate_argnums=0)
    holder = [jax.jit(trainer.init, out_shardings=replicated)(
        jax.random.key(0))]

    def run():
      holder[0], metrics = step(holder[0], batch)
      jax.block_until_ready(metrics)
    return run

  fns = {"plain": compiled(trainer.train_step),
         "stop (flag)": compiled(nonfinite.guard(trainer.train_step, "stop")),
         "skip (flag + select)": compiled(
             nonfinite.guard(trainer.train_step, "skip"))}
  times = interleaved(fns, args.repeats, warmup=2)
  base = median_ms(times["plain"])
  print(f"{args.config}, batch {config.data.batch_size}, "
        f"{jax.device_count()} {jax.devices()[0].platform} device(s), "
        f"load {load_average()}")
  for name, t in times.items():
    print(f"  {name:22s} {median_ms(t):8.2f} ms  ({spread_ms(t)})  "
          f"x{median_ms(t) / base:.3f}")


if __name__ == "__main__":
  main()
