r"""The whole training loop against its bare step and against PyTorch.

    PYTHONPATH=. python bench/loop.py                       # every case
    PYTHONPATH=. python bench/loop.py --cases=dcgan64 --rounds=3
    PYTHONPATH=. python bench/loop.py --compile             # time to first step

What a researcher waits for is `train.train_and_evaluate`, not the step. For
each case this times, interleaved round by round (a shared machine drifts):

  loop        the real `train_and_evaluate` (data, prefetch thread, host
              syncs at every log, tqdm, metrics.jsonl) on a fresh workdir,
              evaluation and checkpoints off until the end; ms/step from the
              loop's own `steps_per_sec` over the logs after the first (the
              first holds the compilation);
  loop_fixed  the same loop fed one batch already on the device: loop minus
              loop_fixed is what the input pipeline costs;
  step        the compiled step alone on one device batch (`train.setup`'s
              jitted step, state donated): loop_fixed minus step is the
              loop's own overhead;
  input       ms to produce one global batch (read, decode, resize, scale,
              device transfer) with nothing else running;
  torch       the PyTorch reference iteration of the same architecture
              (bench/torch_reference.py, pre-made batches: no data loading).

Cases run the real configs: dcgan64 = configs/dcgan.py:celeb_a and dcgan28 =
:mnist and wgan_gp28 = configs/wgan_gp.py:mnist read TFDS through the project's
mock (`gen_jax.data.testing.mock_tfds`, 256 random examples at the real
datasets' native sizes, e.g. CelebA's 218x178 resized to 64 per batch);
dcgan64_prepared reads CelebA's mock prepared once at 64 px
(`python -m gen_jax.prepare_data celeb_a --image_size=64`); dcgan16 /
wgan_gp16 read the embedded digits; gan2d (configs/gan_2d.py:ring) and
vae_digits (configs/vae.py:digits) are small models on embedded data, whose
steps take milliseconds (no PyTorch reference).

`--compile` times, for every config in configs/ (default argument, one CPU
device), `train_and_evaluate` from its call to the end of the first step
(set-up, data, compiling init and step, one step).
"""

import argparse
import contextlib
import dataclasses
import glob
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time

import jax
import numpy as np

from gen_jax import train
try:
  from gen_jax.data import resized
except ImportError:  # a version before prepared data (before/after runs)
  resized = None
from gen_jax.data.testing import mock_tfds

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import timing  # noqa: E402  (bench/timing.py)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass(frozen=True)
class Case:
  config: str                    # configs/NAME.py:ARG
  mocked: bool                   # TFDS through the mock
  torch: tuple | None = None     # (torch_reference function, resolution, ch)
  prepared: bool = False         # read a copy prepared at the image size


CASES = {
    "dcgan64": Case("dcgan:celeb_a", True, ("dcgan_step", 64, 3)),
    "dcgan64_prepared": Case("dcgan:celeb_a", True, ("dcgan_step", 64, 3),
                             prepared=True),
    "dcgan28": Case("dcgan:mnist", True, ("dcgan_step", 28, 1)),
    "wgan_gp28": Case("wgan_gp:mnist", True, ("wgan_gp_step", 28, 1)),
    "dcgan16": Case("dcgan:digits", False, ("dcgan_step", 16, 1)),
    "wgan_gp16": Case("wgan_gp:digits", False, ("wgan_gp_step", 16, 1)),
    "gan2d": Case("gan_2d:ring", False),
    "vae_digits": Case("vae:digits", False),
}
VARIANTS = ("loop", "loop_fixed", "step", "input", "torch")


def load_config(spec: str):
  name, _, arg = spec.partition(":")
  path = os.path.join(ROOT, "configs", f"{name}.py")
  module_spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg or None)


def case_config(case: Case, steps: int, log_every: int):
  c = load_config(case.config)
  c.mesh.num_devices = 1
  c.train.num_steps = steps
  c.train.log_every = log_every
  # Evaluation and checkpoints only at the end, after the timed logs.
  c.train.eval_every = c.train.checkpoint_every = 10 * steps
  c.train.num_eval_samples = min(c.train.num_eval_samples, 256)
  c.evals = ()
  c.wandb.mode = "disabled"
  return c


@contextlib.contextmanager
def data_context(case: Case, config):
  """The case's data: the TFDS mock (and its copy prepared at the config's
  image size, `gen_jax.data.resized`, in a temporary data_dir) or the
  embedded data."""
  if not case.mocked:
    yield
    return
  with mock_tfds(num_examples=256), tempfile.TemporaryDirectory() as d:
    config.data.data_dir = d
    if case.prepared:
      if resized is None:
        raise SystemExit("this gen_jax has no prepared data (data/resized.py)")
      with open(os.devnull, "w") as null, contextlib.redirect_stderr(null):
        resized.write(config.data.name, config.data.image_size, d)
    yield


@contextlib.contextmanager
def fixed_batch():
  """`Setup.batch` returns its first batch (already on the device) ever
  after: the loop without an input pipeline."""
  original = train.Setup.batch
  cache = {}

  def batch(self, stream):
    if "b" not in cache:
      cache["b"] = original(self, stream)
    return cache["b"]
  train.Setup.batch = batch
  try:
    yield
  finally:
    train.Setup.batch = original


@contextlib.contextmanager
def first_step_timer(out: dict):
  """Records seconds from `train_and_evaluate`'s call to the end of its
  first step in out['first_step_s'] (one extra sync, at that step only)."""
  original_step_for = train.Setup.step_for
  start = {}

  def step_for(self, step):
    fn = original_step_for(self, step)
    if "first_step_s" in out:
      return fn

    def timed(*args):
      result = fn(*args)
      jax.block_until_ready(result)
      out["first_step_s"] = time.perf_counter() - start["t"]
      out["first_step_cpu_s"] = time.process_time() - start["cpu"]
      return result
    return timed

  original_tae = train.train_and_evaluate

  def train_and_evaluate(config, workdir):
    start["t"], start["cpu"] = time.perf_counter(), time.process_time()
    return original_tae(config, workdir)
  train.Setup.step_for = step_for
  train.train_and_evaluate = train_and_evaluate
  try:
    yield train_and_evaluate
  finally:
    train.Setup.step_for = original_step_for
    train.train_and_evaluate = original_tae


def run_loop(case: Case, steps: int, log_every: int, fixed: bool) -> dict:
  """ms/step of the real loop (logs after the first) and the time to the
  end of its first step."""
  config = case_config(case, steps, log_every)
  out: dict = {}
  with tempfile.TemporaryDirectory() as workdir, data_context(case, config), \
      (fixed_batch() if fixed else contextlib.nullcontext()), \
      first_step_timer(out) as tae, open(os.devnull, "w") as null, \
      contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
    tae(config, workdir)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
      rows = [json.loads(line) for line in f]
  rates = [r["steps_per_sec"] for r in rows if "steps_per_sec" in r][1:]
  per_step = [1e3 / r for r in rates]
  return {"ms": statistics.mean(per_step), "windows": per_step,
          "first_step_s": out.get("first_step_s")}


def step_and_input(case: Case, steps: int) -> dict:
  """The bare compiled step (median ms) and the input pipeline alone (mean
  ms per global batch)."""
  config = case_config(case, steps, steps)
  with data_context(case, config):
    s = train.setup(config)
    stream = s.stream()
    start = time.perf_counter()
    batches = [s.batch(stream) for _ in range(steps)]
    jax.block_until_ready(batches)
    input_ms = 1e3 * (time.perf_counter() - start) / steps
  state = s.init(s.key)
  step = s.step_for(0)
  batch = batches[0]
  state, metrics = step(state, batch)
  jax.block_until_ready(metrics)
  times = []
  for _ in range(steps):
    t = time.perf_counter()
    state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - t)
  return {"step": 1e3 * statistics.median(times), "input": input_ms}


def torch_ms(case: Case, steps: int, batch_shape) -> float | None:
  if case.torch is None:
    return None
  try:
    import torch
    import torch_reference
  except ImportError:
    return None
  fn, res, ch = case.torch
  n_critic = batch_shape[0]
  step = getattr(torch_reference, fn)(res, ch)
  x = torch.rand(n_critic, batch_shape[1], ch, res, res) * 2 - 1
  x = x if n_critic > 1 else x[0]
  step(x)
  times = []
  for _ in range(steps):
    t = time.perf_counter()
    step(x)
    times.append(time.perf_counter() - t)
  return 1e3 * statistics.median(times)


def bench_cases(names, rounds: int, steps: int, log_every: int) -> dict:
  results = {n: {v: [] for v in VARIANTS} | {"first_step_s": []}
             for n in names}
  for r in range(rounds):
    for name in names:
      case, res = CASES[name], results[name]
      loop = run_loop(case, steps, log_every, fixed=False)
      res["loop"].append(loop["ms"])
      res["first_step_s"].append(loop["first_step_s"])
      res["loop_fixed"].append(run_loop(case, steps, log_every,
                                        fixed=True)["ms"])
      si = step_and_input(case, max(5, steps // 2))
      res["step"].append(si["step"])
      res["input"].append(si["input"])
      if case.torch is not None:
        config = load_config(case.config)
        t = torch_ms(case, max(5, steps // 2),
                     (config.gan.n_critic, config.data.batch_size))
        if t is not None:
          res["torch"].append(t)
      print(f"round {r + 1} {name}: " + ", ".join(
          f"{k} {ms(v[-1])}" for k, v in res.items() if v and k != "first_step_s")
            + f"; load {timing.load_average()}", flush=True)
  return results


def ms(x: float) -> str:
  return f"{x:.0f}" if x >= 10 else f"{x:.2f}"


def table(results: dict) -> str:
  med = lambda v: statistics.median(v) if v else float("nan")
  lines = ["| case | loop ms/step | loop (fixed batch) | bare step | input alone "
           "| PyTorch iteration | loop / step | loop / PyTorch | first step s |",
           "|---" * 9 + "|"]
  for name, r in results.items():
    loop, fixed, step, inp, tor = (med(r[k]) for k in VARIANTS)
    lines.append(
        f"| {name} | {ms(loop)} | {ms(fixed)} | {ms(step)} | {ms(inp)} | "
        f"{ms(tor)} | {loop / step:.2f} | {loop / tor:.2f} | "
        f"{med(r['first_step_s']):.1f} |")
  return "\n".join(lines)


def compile_times(names=()) -> str:
  """Time to the first step of every config's default argument."""
  lines = ["| config | first step s | CPU s |", "|---|---|---|"]
  for path in sorted(glob.glob(os.path.join(ROOT, "configs", "*.py"))):
    name = os.path.basename(path)[:-3]
    if names and name not in names:
      continue
    out: dict = {}
    with tempfile.TemporaryDirectory() as workdir, first_step_timer(out) as tae, \
        open(os.devnull, "w") as null, contextlib.redirect_stdout(null), \
        contextlib.redirect_stderr(null):
      try:
        tae(case_config(Case(name, False), 2, 1), workdir)
      except Exception as e:  # noqa: BLE001 -- reported in the table
        out["error"] = type(e).__name__
    first = out.get("first_step_s")
    lines.append(f"| {name} | {first:.1f} | {out['first_step_cpu_s']:.1f} |"
                 if first else f"| {name} | {out.get('error')} | |")
    print(lines[-1], flush=True)
  return "\n".join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--cases", default=",".join(CASES))
  parser.add_argument("--rounds", type=int, default=2)
  parser.add_argument("--steps", type=int, default=25,
                      help="steps per loop run (the first log is dropped)")
  parser.add_argument("--log_every", type=int, default=5)
  parser.add_argument("--compile", action="store_true",
                      help="time to first step of every config instead")
  parser.add_argument("--configs", default="",
                      help="with --compile: only these configs (a,b,...)")
  parser.add_argument("--json", default="")
  args = parser.parse_args()
  print(f"jax {jax.__version__}, {os.cpu_count()} cpus, load before: "
        f"{timing.load_average()}", flush=True)
  if args.compile:
    print(compile_times(tuple(filter(None, args.configs.split(",")))))
    return
  results = bench_cases(args.cases.split(","), args.rounds, args.steps,
                        args.log_every)
  print()
  print(table(results))
  print(f"\nload after: {timing.load_average()}")
  if args.json:
    with open(args.json, "w") as f:
      json.dump(results, f, indent=1)


if __name__ == "__main__":
  main()
