"""Times each UpConv2x impl (forward + backward) on the DCGAN generators' layers.

  PYTHONPATH=. python bench/upsample.py [--repeats 5]

Prints a Markdown table: median ms per forward+backward (gradients wrt input
and kernel) of one layer, batch 64, float32.
"""

import argparse

import jax
import jax.numpy as jnp

from bench import timing
from gen_jax.models import upsample

# (H, Cin, Cout) of the DCGAN-64 generator's stride-2 layers (ngf 64).
SHAPES = ((4, 512, 256), (8, 256, 128), (16, 128, 64), (32, 64, 3))
IMPLS = {"conv_transpose": upsample.conv_transpose_2x,
         "sub_pixel": upsample.sub_pixel_2x}


def fwd_bwd(fn):
  def loss(x, k):
    return jnp.sum(fn(x, k) ** 2)
  return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--batch", type=int, default=64)
  args = parser.parse_args()
  print(f"load before: {timing.load_average()}")
  print("| input -> output | " + " | ".join(IMPLS) + " |")
  print("|---" * (len(IMPLS) + 1) + "|")
  for h, cin, cout in SHAPES:
    kx, kk = jax.random.split(jax.random.key(0))
    x = jax.random.normal(kx, (args.batch, h, h, cin))
    k = 0.02 * jax.random.normal(kk, (4, 4, cin, cout))
    fns = {}
    for name, impl in IMPLS.items():
      step = fwd_bwd(impl)
      fns[name] = lambda step=step: jax.block_until_ready(step(x, k))
    times = timing.interleaved(fns, args.repeats)
    cells = [f"{timing.median_ms(t):.1f} ({timing.spread_ms(t)})"
             for t in times.values()]
    print(f"| ({args.batch}, {h}, {h}, {cin}) -> {cout} | "
          + " | ".join(cells) + " |")
  print(f"load after: {timing.load_average()}")


if __name__ == "__main__":
  main()
