"""Times gen_jax's train steps against PyTorch eager references, interleaved.

  PYTHONPATH=. python bench/train_steps.py [--cases dcgan64,wgan_gp28]
      [--repeats 7] [--upsample sub_pixel]

--upsample defaults to sub_pixel, the recommended config.model.upsample.

For each case: gen_jax's real trainer (configs/*.py, trainers/*.py, jitted as
train.py does, donating the state) and bench/torch_reference.py's step of the
same architecture and update run on the same random batch, alternately, after
a warm-up. Data loading is excluded on both sides. Prints Markdown tables:
median ms per step (min-max), images/s, the ratio, FLOP/s as a fraction of the
matmul ceiling measured in the same run, and time to the first step.
"""

import argparse
import dataclasses
import importlib.util
import os
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import torch

from bench import flops, peak, timing, torch_reference
from gen_jax import trainers
from gen_jax.data.base import DatasetInfo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass(frozen=True)
class Case:
  config: str        # configs/NAME.py
  dataset: str       # the config argument, which sets the resolution
  shape: tuple[int, int, int]
  torch_step: Callable[[], Callable[[torch.Tensor], None]]


CASES = {
    "dcgan64": Case("dcgan", "celeb_a", (64, 64, 3),
                    lambda: torch_reference.dcgan_step(64, 3)),
    "dcgan28": Case("dcgan", "mnist", (28, 28, 1),
                    lambda: torch_reference.dcgan_step(28, 1)),
    "dcgan16": Case("dcgan", "digits", (16, 16, 1),
                    lambda: torch_reference.dcgan_step(16, 1)),
    "wgan_gp28": Case("wgan_gp", "mnist", (28, 28, 1),
                      lambda: torch_reference.wgan_gp_step(28, 1)),
    "wgan_gp16": Case("wgan_gp", "digits", (16, 16, 1),
                      lambda: torch_reference.wgan_gp_step(16, 1)),
    # configs/sngan.py:digits (widths 32, critic blocks down, down, -;
    # n_critic 2) and :cifar10 (G 256, D 128, down, down, -, -; n_critic 5).
    "sngan16": Case("sngan", "digits", (16, 16, 1),
                    lambda: torch_reference.sngan_step(
                        16, 1, 32, 32, (True, True, False), n_critic=2)),
    "sngan32": Case("sngan", "cifar10", (32, 32, 3),
                    lambda: torch_reference.sngan_step(
                        32, 3, 256, 128, (True, True, False, False))),
    "vae28": Case("vae", "mnist", (28, 28, 1),
                  lambda: torch_reference.vae_step(784)),
}


def load_config(name: str, arg: str):
  path = os.path.join(ROOT, "configs", f"{name}.py")
  spec = importlib.util.spec_from_file_location(f"bench_config_{name}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def gen_jax_step(case: Case, upsample: str | None, trainer_class=None):
  """(step thunk, first-step seconds, compile seconds, batch shape, the
  compiled executable)."""
  config = load_config(case.config, case.dataset)
  if upsample:  # the architecture's own field (model.dcgan / model.conv)
    for arch in ("dcgan", "conv"):
      if arch in config.model:
        config.model[arch].upsample = upsample
  value_range = tuple(config.data.value_range)
  info = DatasetInfo(name=case.dataset, kind="image", example_shape=case.shape,
                     value_range=value_range, num_train=60000)
  trainer = (trainer_class(config, info) if trainer_class
             else trainers.create(config, info))
  shape = (trainer.batches_per_step, config.data.batch_size, *case.shape)
  x = np.random.default_rng(0).uniform(*value_range, shape).astype(np.float32)
  if config.trainer == "vae":
    x = np.round(x)  # binarized data
  batch = {"x": jnp.asarray(x)}
  state = jax.jit(trainer.init)(jax.random.key(config.seed))
  jax.block_until_ready(state)
  step = jax.jit(trainer.train_step, donate_argnums=0)
  start = time.perf_counter()
  compiled = step.lower(state, batch).compile()
  compile_s = time.perf_counter() - start
  holder = [state]

  def run():
    holder[0], metrics = compiled(holder[0], batch)
    jax.block_until_ready(metrics)
  first_s = compile_s + timing.time_once(run)
  return run, first_s, compile_s, shape, compiled


def torch_batch(shape: tuple[int, ...], vae: bool) -> torch.Tensor:
  """NCHW (or flat, for the MLP VAE) version of the gen_jax batch shape."""
  steps, b, h, w, c = shape
  if vae:
    return torch.rand(b, h * w * c).round()
  x = torch.rand(steps, b, c, h, w) * 2 - 1
  return x if steps > 1 else x[0]


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--cases", default=",".join(CASES))
  parser.add_argument("--repeats", type=int, default=7)
  parser.add_argument("--upsample", default="sub_pixel",
                      help="config.model.upsample for the GAN and conv VAE "
                      "('' keeps the config's own)")
  args = parser.parse_args()
  print(f"jax {jax.__version__} on {jax.devices()[0].platform}, torch "
        f"{torch.__version__} ({torch.get_num_threads()} threads), "
        f"{os.cpu_count()} cpus; load before: {timing.load_average()}")
  ceiling = peak.matmul_peak()
  print("matmul ceiling (GFLOP/s): "
        + ", ".join(f"{k} {v:.0f}" for k, v in ceiling.items()))
  rows = []
  for name in args.cases.split(","):
    case = CASES[name]
    jax_run, jax_first, jax_compile, shape, _ = gen_jax_step(case, args.upsample)
    torch_step = case.torch_step()
    tb = torch_batch(shape, case.config == "vae")
    start = time.perf_counter()
    torch_step(tb)
    torch_first = time.perf_counter() - start
    gflop = flops.count_flops(torch_step, tb) / 1e9
    cpu: dict[str, list[float]] = {}
    times = timing.interleaved({"jax": jax_run, "torch": lambda: torch_step(tb)},
                               args.repeats, cpu=cpu)
    images = shape[0] * shape[1]
    rows.append((name, times, images, gflop, jax_first, jax_compile,
                 torch_first, cpu))
    print(f"  {name} done, load {timing.load_average()}", flush=True)

  print("\n| case | GFLOP/step | gen_jax ms/step | PyTorch ms/step | "
        "gen_jax / PyTorch time | speed-up | gen_jax img/s | PyTorch img/s | "
        "gen_jax % of peak | PyTorch % of peak | gen_jax CPU ms/step | "
        "PyTorch CPU ms/step |")
  print("|---" * 12 + "|")
  for name, times, images, gflop, *_, cpu in rows:
    jm, tm = timing.median_ms(times["jax"]), timing.median_ms(times["torch"])
    pct = lambda ms: 100 * gflop / (ms * 1e-3) / ceiling["jax"]
    print(f"| {name} | {gflop:.1f} | {jm:.1f} ({timing.spread_ms(times['jax'])})"
          f" | {tm:.1f} ({timing.spread_ms(times['torch'])}) | {jm / tm:.2f} | "
          f"{tm / jm:.2f}x | {images / jm * 1e3:.0f} | {images / tm * 1e3:.0f} |"
          f" {pct(jm):.0f}% | {pct(tm):.0f}% | {timing.median_ms(cpu['jax']):.0f}"
          f" | {timing.median_ms(cpu['torch']):.0f} |")
  print("\n| case | gen_jax compile s | gen_jax first step s | "
        "PyTorch first step s |")
  print("|---" * 4 + "|")
  for name, _, _, _, jax_first, jax_compile, torch_first, _ in rows:
    print(f"| {name} | {jax_compile:.2f} | {jax_first:.2f} | "
          f"{torch_first:.2f} |")
  print(f"\nload after: {timing.load_average()}")


if __name__ == "__main__":
  main()
