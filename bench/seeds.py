"""N seeds in one program (`config.train.num_seeds`) vs N runs one after another.

  PYTHONPATH=. python bench/seeds.py                     # 32 seeds, both sizes
  PYTHONPATH=. python bench/seeds.py --sizes=pacgan --seeds=8 --steps=300

Both sides use the real training loop, `train.train_and_evaluate`, end to end
(build, compile, train, evaluate 2,500 samples per seed, checkpoint):
- many: one run with num_seeds=N;
- sequential: `--singles` single runs (seeds 0, 1, ...) in this process; every
  single run costs the same, so N runs take N times their mean (running all N
  would repeat one measurement N times). In-process runs skip the interpreter
  start and imports that separate launches would pay: the sequential side is
  flattered, not penalised.
Reported: wall time of each side, the end-to-end speed-up, and the
steady-state speed-up (seed-steps per second in training, from metrics.jsonl,
which excludes compilation and evaluation).

Sizes (configs/gan_2d.py:ring, batch 100):
- pacgan: PacGAN's networks (the config's default), G 4 x 400 with batch
  norm, D 3 maxout layers of 200 units x 5 pieces;
- small: the Unrolled GAN appendix's sizes, G 2 x 128 (no batch norm) on
  256-d noise, D 1 x 128 LeakyReLU.
"""

import argparse
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from bench.timing import load_average  # noqa: E402
from gen_jax import train  # noqa: E402

SIZES = {
    "pacgan": {},
    "small": {"g_hidden": (128, 128), "g_batch_norm": False,
              "noise_dim": 256, "d_hidden": (128,), "d_maxout_pieces": 0},
}


def config(size: str, num_seeds: int, seed: int, steps: int):
  spec = importlib.util.spec_from_file_location(
      "gan_2d", os.path.join(REPO, "configs", "gan_2d.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config("ring")
  for k, v in SIZES[size].items():
    c.model[k] = v
  c.seed = seed
  c.train.num_seeds = num_seeds
  c.train.num_steps = steps
  c.train.log_every = max(1, steps // 4)
  c.train.eval_every = c.train.checkpoint_every = steps
  c.wandb.mode = "disabled"
  return c


def timed_run(c) -> tuple[float, float]:
  """(wall seconds, steady training steps/s) of one train_and_evaluate."""
  workdir = tempfile.mkdtemp(prefix="bench_seeds_")
  try:
    start = time.perf_counter()
    train.train_and_evaluate(c, workdir)
    wall = time.perf_counter() - start
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
      rates = [json.loads(line).get("steps_per_sec") for line in f]
    rates = [r for r in rates if r is not None]
    steady = rates[1:] or rates  # the first interval includes compilation
    return wall, sum(steady) / len(steady)
  finally:
    shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--seeds", type=int, default=32)
  p.add_argument("--steps", type=int, default=2000)
  p.add_argument("--singles", type=int, default=2)
  p.add_argument("--sizes", default="small,pacgan")
  args = p.parse_args()
  print(f"load average before: {load_average()}")
  rows = []
  for size in args.sizes.split(","):
    many_wall, many_rate = timed_run(config(size, args.seeds, 0, args.steps))
    singles = [timed_run(config(size, 1, s, args.steps))
               for s in range(args.singles)]
    single_wall = sum(w for w, _ in singles) / len(singles)
    single_rate = sum(r for _, r in singles) / len(singles)
    row = {
        "size": size, "seeds": args.seeds, "steps": args.steps,
        "many_wall_s": round(many_wall, 1),
        "sequential_wall_s": round(args.seeds * single_wall, 1),
        "single_run_wall_s": round(single_wall, 1),
        "end_to_end_speedup": round(args.seeds * single_wall / many_wall, 2),
        "many_seed_steps_per_s": round(args.seeds * many_rate, 1),
        "single_steps_per_s": round(single_rate, 1),
        "steady_speedup": round(args.seeds * many_rate / single_rate, 2),
    }
    rows.append(row)
    print(json.dumps(row), flush=True)
  print(f"load average after: {load_average()}")
  print("\n| model | N | steps | N seeds in one run | N runs in sequence | "
        "speed-up | training seed-steps/s (one run / single) | steady "
        "speed-up |\n|---|---|---|---|---|---|---|---|")
  for r in rows:
    print(f"| {r['size']} | {r['seeds']} | {r['steps']} | "
          f"{r['many_wall_s']} s | {r['sequential_wall_s']} s "
          f"({r['single_run_wall_s']} s each) | {r['end_to_end_speedup']}x | "
          f"{r['many_seed_steps_per_s']} / {r['single_steps_per_s']} | "
          f"{r['steady_speedup']}x |")


if __name__ == "__main__":
  main()
