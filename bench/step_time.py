"""Times the compiled train step of configs with whatever `gen_jax` is
importable, so that two versions of the code can be compared on one machine.

  PYTHONPATH=. python bench/step_time.py --json=new.json
  PYTHONPATH=/path/to/old/checkout python bench/step_time.py --json=old.json
  PYTHONPATH=. python bench/step_time.py --cases=dcgan:digits,sngan:digits \
      --set=model.compute_dtype=bfloat16 --json=bf16.json

For each config (on the embedded data, one CPU device): the step the loop
compiles (with the non-finite guard and the run's shardings), on one real
batch, after 3 warm-up steps; median wall and CPU ms per step over
`--steps`. Runs of two versions should alternate (old, new, old, new) so
that a changing machine load hits both alike; `bench/README` or
BENCHMARKS.md record the results. Before the trainer protocol (commit
3385aa5) the loop had no `train.setup`: the step is then built as its
`train_and_evaluate` built it.
"""

import argparse
import importlib.util
import json
import os
import statistics
import time

import jax

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = ("dcgan:digits", "wgan_gp:digits", "vae:digits", "gan_2d:ring")


def load_config(name: str, arg: str):
  path = os.path.join(os.environ.get("GEN_JAX_CONFIGS", ROOT), "configs",
                      f"{name}.py")
  spec = importlib.util.spec_from_file_location(f"bench_config_{name}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def compiled_step(config):
  """(step, state, batch) as the loop of this version builds them."""
  from gen_jax import train
  if hasattr(train, "setup"):
    s = train.setup(config)
    return s.train_step, s.init(s.key), s.batch(s.stream())
  # The loop of 3385aa5 (GanState/VaeState, `_Run`).
  from gen_jax import nonfinite
  run = train._Run(config, "/tmp/unused")  # pylint: disable=protected-access
  step = train.jit_train_step(run, nonfinite.guard(run.trainer.train_step,
                                                   "stop"))
  state = jax.jit(run.trainer.init, out_shardings=run.state_sharding)(
      run.key)
  stream = run.stream()
  local = train._stack([next(stream)  # pylint: disable=protected-access
                        for _ in range(run.trainer.batches_per_step)])
  from gen_jax import parallel
  return step, state, parallel.global_batch(local, run.mesh, leading=1)


def structure(step, state, batch) -> dict:
  """What the compiled step computes: XLA's FLOPs and bytes, and counts of
  convolutions, fusions and lines in its optimised HLO (load-independent)."""
  compiled = step.lower(state, batch).compile()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  hlo = compiled.as_text()
  return {"flops": cost.get("flops"), "bytes": cost.get("bytes accessed"),
          "convolutions": hlo.count("convolution("),
          "fusions": hlo.count(" fusion("), "hlo_lines": hlo.count("\n")}


def override(config, assignments: str) -> None:
  """'model.compute_dtype=bfloat16,gan.n_critic=1' -> set those fields (the
  value parsed as a Python literal when it is one)."""
  import ast
  for item in filter(None, assignments.split(",")):
    path, value = item.split("=", 1)
    try:
      value = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      pass
    *groups, field = path.split(".")
    node = config
    for g in groups:
      node = node[g]
    node[field] = value


def time_case(case: str, steps: int, assignments: str = "") -> dict:
  name, arg = case.split(":")
  config = load_config(name, arg)
  config.mesh.num_devices = 1
  override(config, assignments)
  step, state, batch = compiled_step(config)
  shape = structure(step, state, batch)
  for _ in range(3):
    state, metrics = step(state, batch)
  jax.block_until_ready(metrics)
  wall, cpu = [], []
  for _ in range(steps):
    w, c = time.perf_counter(), time.process_time()
    state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
    wall.append(time.perf_counter() - w)
    cpu.append(time.process_time() - c)
  return {"wall_ms": 1e3 * statistics.median(wall),
          "cpu_ms": 1e3 * statistics.median(cpu), **shape}


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--cases", default=",".join(CASES))
  parser.add_argument("--steps", type=int, default=30)
  parser.add_argument("--json", required=True)
  parser.add_argument("--set", default="",
                      help="config fields for every case: a.b=v,c.d=w")
  args = parser.parse_args()
  out = {case: time_case(case, args.steps, args.set)
         for case in args.cases.split(",")}
  out["set"] = args.set
  out["load"] = os.getloadavg()[0]
  with open(args.json, "w") as f:
    json.dump(out, f, indent=1)
  print(json.dumps(out))


if __name__ == "__main__":
  main()
