"""A/B timings of speed levers on gen_jax's GAN step (interleaved medians).

  PYTHONPATH=. python bench/levers.py --case dcgan64 [--variants base,bf16]

Each variant is the real GanTrainer with one change, defined here so that the
core stays as it is until a lever proves worth it:
  base     configs as they are (with --upsample);
  xla_up_grad  the generator's sub-pixel layers differentiated by XLA
           instead of conv2x.sub_pixel_2x's custom VJP;
  scan     the critic updates in a lax.scan (one compiled copy) instead of
           the trainer's unrolled Python loop;
  lax_d    the critic's convolutions with XLA's own gradient (nn.Conv's)
           instead of DownConv2x's sub-pixel input gradient;
  bf16     generator and critic compute in bfloat16 (params, BN and losses
           stay float32): an opt-in, not the same numbers.
The variants joint_d (the critic's real and fake passes as one vmapped call)
and reuse_g (the PyTorch example's single generator pass) were written
against the GanState trainer and were not ported to the trainer protocol;
their measurements in BENCHMARKS.md stand, and their code is in git
(`git show 3385aa5:bench/levers.py`).
"""

import argparse
from unittest import mock

import jax
import jax.numpy as jnp

from bench import timing, train_steps
from gen_jax.models import conv2x, upsample
from gen_jax.trainers import gan


class Bf16(gan.GanTrainer):
  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self.generator = self.generator.clone(dtype=jnp.bfloat16)
    self.discriminator = self.discriminator.clone(dtype=jnp.bfloat16)


class XlaSubPixelGrad(gan.GanTrainer):
  def train_step(self, state, batch):
    with mock.patch.object(upsample, "sub_pixel_2x", conv2x.sub_pixel_phases):
      return super().train_step(state, batch)


class ScanCritic(gan.GanTrainer):
  def train_step(self, state, batch):
    key = jax.random.fold_in(state.key, state.step)
    critic_keys = jax.random.split(jax.random.fold_in(key, 0),
                                   self.batches_per_step)
    state, d_metrics = jax.lax.scan(
        lambda s, xs: self.critic_step(s, xs[0], None, xs[1]), state,
        (batch["x"], critic_keys))
    state, g_metrics = self._g_update(state, jax.random.fold_in(key, 1),
                                      batch["x"][-1], None)
    metrics = {k: v[-1] for k, v in d_metrics.items()}
    metrics.update(g_metrics)
    return state.replace(step=state.step + 1), metrics


class LaxD(gan.GanTrainer):
  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self.discriminator = self.discriminator.clone(downsample="conv")


VARIANTS = {"base": gan.GanTrainer, "xla_up_grad": XlaSubPixelGrad,
            "scan": ScanCritic, "lax_d": LaxD, "bf16": Bf16}


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--case", default="dcgan64")
  parser.add_argument("--variants", default=",".join(VARIANTS))
  parser.add_argument("--upsample", default="sub_pixel")
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  print(f"load before: {timing.load_average()}")
  case = train_steps.CASES[args.case]
  fns, compile_s = {}, {}
  for name in args.variants.split(","):
    run, _, compile_s[name], _, _ = train_steps.gen_jax_step(
        case, args.upsample, trainer_class=VARIANTS[name])
    fns[name] = run
  cpu: dict[str, list[float]] = {}
  times = timing.interleaved(fns, args.repeats, cpu=cpu)
  print(f"\n| {args.case} variant | wall ms/step (min-max) | vs first | "
        "CPU ms/step | vs first | compile s |")
  print("|---|---|---|---|---|---|")
  first = next(iter(times))
  base, base_cpu = timing.median_ms(times[first]), timing.median_ms(cpu[first])
  for name, t in times.items():
    c = timing.median_ms(cpu[name])
    print(f"| {name} | {timing.median_ms(t):.0f} ({timing.spread_ms(t)}) | "
          f"{timing.median_ms(t) / base:.2f} | {c:.0f} | {c / base_cpu:.2f} | "
          f"{compile_s[name]:.1f} |")
  print(f"load after: {timing.load_average()}")


if __name__ == "__main__":
  main()
