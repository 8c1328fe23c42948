"""Times gen_jax's train steps against PyTorch eager references, interleaved.

  PYTHONPATH=. python bench/train_steps.py [--cases dcgan64,wgan_gp28]
      [--repeats 7] [--upsample sub_pixel]

--upsample defaults to sub_pixel, the recommended config.model.upsample.

For each case: gen_jax's real trainer (configs/*.py, trainers/*.py, jitted as
train.py does, donating the state) and bench/torch_reference.py's step of the
same architecture and update run on the same random batch, alternately, after
a warm-up. Data loading is excluded on both sides. Prints Markdown tables:
median ms per step (min-max), images/s, the ratio, FLOP/s as a fraction of the
matmul ceiling measured in the same run, time to the first step, and each
side's parameter count (equal for every case, tests/test_torch_reference.py).

A case with lazy regularisers (StyleGAN2: R1 every 16 steps, path length
every 4; gen_jax runs them under `lax.cond` in its one compiled step) is
timed over `cycle` consecutive steps per call on both sides, so every timed
call holds the same mix of step kinds; the tables report the mean per step.
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

from bench import flops, peak, timing, torch_reference, torch_stylegan2
from gen_jax import trainers
from gen_jax.data.base import DatasetInfo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass(frozen=True)
class Case:
  config: str        # configs/NAME.py
  dataset: str       # the config argument, which sets the resolution
  shape: tuple[int, int, int]
  torch_step: Callable[[], torch_reference.Step]
  num_classes: int = 0   # > 0: labelled batches (conditional configs)
  cycle: int = 1         # steps per timed call (lazy regularisers)


def load_config(name: str, arg: str):
  path = os.path.join(ROOT, "configs", f"{name}.py")
  spec = importlib.util.spec_from_file_location(f"bench_config_{name}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def biggan_reference(arg: str, channels: int, num_classes: int):
  """torch_reference.biggan_step with configs/biggan.py:ARG's settings."""
  c = load_config("biggan", arg)
  a, g, o = c.model.resnet, c.gan, c.optim
  assert (g.loss == "hinge" and g.g_regularizer == "orthogonal"
          and a.hierarchical and a.g_spectral_norm and not a.g_mult
          and a.g_width == a.d_width and (o.g_lr, o.g_b1, o.g_b2)
          == (o.d_lr, o.d_b1, o.d_b2) and o.decay == "constant")
  return torch_reference.biggan_step(
      c.data.image_size, channels, a.g_width, tuple(a.d_down),
      num_classes if g.conditional else 0, a.shared_dim, c.model.noise_dim,
      tuple(a.d_mult), c.data.batch_size, a.g_attention, a.d_attention,
      g.g_regularizer_weight, g.ema_decay, o.g_lr, (o.g_b1, o.g_b2))


def stylegan2_reference(arg: str, channels: int):
  """torch_stylegan2.stylegan2_step with configs/stylegan2.py:ARG's
  settings."""
  c = load_config("stylegan2", arg)
  a, g, o = c.model.stylegan2, c.gan, c.optim
  assert (g.loss == "non_saturating" and g.penalty == "r1"
          and g.n_critic == 1 and a.g_width == a.d_width
          and g.g_regularizer in ("path_length", "none")
          and (o.g_lr, o.g_b1, o.g_b2) == (o.d_lr, o.d_b1, o.d_b2)
          and o.decay == "constant")
  pl_weight = g.g_regularizer_weight if g.g_regularizer != "none" else 0.0
  return torch_stylegan2.stylegan2_step(
      c.data.image_size, channels, c.model.noise_dim, a.w_dim,
      a.mapping_layers, a.g_width, a.max_width, a.mixing, a.mbstd_group,
      c.data.batch_size, g.penalty_weight, g.penalty_every, pl_weight,
      g.g_regularizer_every, g.pl_batch_shrink, g.pl_decay, o.g_lr,
      (o.g_b1, o.g_b2), g.ema_decay, a.mapping_lr_mul, a.w_avg_beta)


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
    # configs/biggan.py:digits (widths 32, shared embedding 32, z 3 x 40,
    # n_critic 2, conditional on 10 classes) and :cifar10 (widths 256,
    # embedding 128, z 4 x 32, n_critic 4, batch 50).
    "biggan16": Case("biggan", "digits", (16, 16, 1),
                     lambda: biggan_reference("digits", 1, 10),
                     num_classes=10),
    "biggan32": Case("biggan", "cifar10", (32, 32, 3),
                     lambda: biggan_reference("cifar10", 3, 10),
                     num_classes=10),
    # configs/stylegan2.py:digits (z = w = 128, 8 mapping layers, maps
    # 64 -> 32 -> 16, batch 32, R1 every 16, path length every 4, mixing)
    # and :cifar10 (512 maps, 2 mapping layers, batch 64, R1 every 16, no
    # path length, no mixing): 16 steps per timed call.
    "stylegan2_16": Case("stylegan2", "digits", (16, 16, 1),
                         lambda: stylegan2_reference("digits", 1), cycle=16),
    "stylegan2_32": Case("stylegan2", "cifar10", (32, 32, 3),
                         lambda: stylegan2_reference("cifar10", 3), cycle=16),
}


def build_trainer(case: Case, upsample: str | None = None,
                  trainer_class=None):
  """(config, trainer) of a case, as train.py builds them."""
  config = load_config(case.config, case.dataset)
  if upsample:  # the architecture's own field (model.dcgan / model.conv)
    for arch in ("dcgan", "conv"):
      if arch in config.model:
        config.model[arch].upsample = upsample
  extras = {"num_classes": case.num_classes} if case.num_classes else {}
  info = DatasetInfo(name=case.dataset, kind="image", example_shape=case.shape,
                     value_range=tuple(config.data.value_range),
                     num_train=60000, extras=extras)
  trainer = (trainer_class(config, info) if trainer_class
             else trainers.create(config, info))
  return config, trainer


def param_counts(trainer) -> dict[str, int]:
  """Parameters of each of the trainer's networks (shapes only)."""
  params = jax.eval_shape(trainer.init, jax.random.key(0)).params
  return {name: sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))
          for name, tree in params.items()}


def gen_jax_step(case: Case, upsample: str | None, trainer_class=None):
  """(step thunk, first-step seconds, compile seconds, batch shape, the
  compiled executable)."""
  config, trainer = build_trainer(case, upsample, trainer_class)
  value_range = tuple(config.data.value_range)
  shape = (trainer.batches_per_step, config.data.batch_size, *case.shape)
  rng = np.random.default_rng(0)
  x = rng.uniform(*value_range, shape).astype(np.float32)
  if config.trainer == "vae":
    x = np.round(x)  # binarized data
  batch = {"x": jnp.asarray(x)}
  if case.num_classes:
    batch["label"] = jnp.asarray(rng.integers(0, case.num_classes, shape[:2]),
                                 jnp.int32)
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


def torch_batch(shape: tuple[int, ...], case: Case) -> tuple:
  """The reference step's arguments: an NCHW (or flat, for the MLP VAE)
  version of the gen_jax batch shape, and labels for a conditional case."""
  steps, b, h, w, c = shape
  if case.config == "vae":
    return (torch.rand(b, h * w * c).round(),)
  x = torch.rand(steps, b, c, h, w) * 2 - 1
  if case.num_classes:
    return x, torch.randint(case.num_classes, (steps, b))
  return (x if steps > 1 else x[0],)


def repeat(fn: Callable, n: int) -> Callable:
  """fn called n times in a row (a cycle of steps)."""
  def run(*args):
    for _ in range(n):
      fn(*args)
  return run


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
    jax_step, jax_first, jax_compile, shape, _ = gen_jax_step(
        case, args.upsample)
    torch_step = case.torch_step()
    targs = torch_batch(shape, case)
    start = time.perf_counter()
    torch_step(*targs)
    torch_first = time.perf_counter() - start
    torch_cycle = repeat(torch_step, case.cycle)
    gflop = flops.count_flops(torch_cycle, *targs) / 1e9 / case.cycle
    cpu: dict[str, list[float]] = {}
    times = timing.interleaved({"jax": repeat(jax_step, case.cycle),
                                "torch": lambda: torch_cycle(*targs)},
                               args.repeats, cpu=cpu)
    for per_call in (times, cpu):  # -> per step
      for k in per_call:
        per_call[k] = [t / case.cycle for t in per_call[k]]
    images = shape[0] * shape[1]
    counts = (sum(param_counts(build_trainer(case, args.upsample)[1])
                  .values()),
              sum(torch_reference.param_counts(torch_step).values()))
    rows.append((name, times, images, gflop, jax_first, jax_compile,
                 torch_first, cpu, counts))
    print(f"  {name} done, load {timing.load_average()}", flush=True)

  print("\n| case | GFLOP/step | gen_jax ms/step | PyTorch ms/step | "
        "gen_jax / PyTorch time | speed-up | gen_jax img/s | PyTorch img/s | "
        "gen_jax % of peak | PyTorch % of peak | gen_jax CPU ms/step | "
        "PyTorch CPU ms/step |")
  print("|---" * 12 + "|")
  for name, times, images, gflop, *_, cpu, _ in rows:
    jm, tm = timing.median_ms(times["jax"]), timing.median_ms(times["torch"])
    pct = lambda ms: 100 * gflop / (ms * 1e-3) / ceiling["jax"]
    print(f"| {name} | {gflop:.1f} | {jm:.1f} ({timing.spread_ms(times['jax'])})"
          f" | {tm:.1f} ({timing.spread_ms(times['torch'])}) | {jm / tm:.2f} | "
          f"{tm / jm:.2f}x | {images / jm * 1e3:.0f} | {images / tm * 1e3:.0f} |"
          f" {pct(jm):.0f}% | {pct(tm):.0f}% | {timing.median_ms(cpu['jax']):.0f}"
          f" | {timing.median_ms(cpu['torch']):.0f} |")
  print("\n| case | gen_jax compile s | gen_jax first step s | "
        "PyTorch first step s | gen_jax params | PyTorch params |")
  print("|---" * 6 + "|")
  for name, _, _, _, jax_first, jax_compile, torch_first, _, counts in rows:
    print(f"| {name} | {jax_compile:.2f} | {jax_first:.2f} | "
          f"{torch_first:.2f} | {counts[0]:,} | {counts[1]:,} |")
  print(f"\nload after: {timing.load_average()}")


if __name__ == "__main__":
  main()
