"""Per-layer forward / forward+backward times of the DCGAN-64 convolutions,
gen_jax (XLA CPU) against PyTorch eager, interleaved.

  PYTHONPATH=. python bench/layers.py [--repeats 5]

Shows where a DCGAN-64 step's time goes layer by layer: GFLOP/s per layer from
the wall-clock median (FLOPs by formula: 2 * MACs, x3 for forward+backward).
"""

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import torch

from bench import timing
from gen_jax.models import downsample, upsample

# (kind, H in, C in, C out); batch 64, NHWC in jax, NCHW in torch.
LAYERS = (("down", 64, 3, 64), ("down", 32, 64, 128), ("down", 16, 128, 256),
          ("down", 8, 256, 512), ("up", 4, 512, 256), ("up", 8, 256, 128),
          ("up", 16, 128, 64), ("up", 32, 64, 3))


def jax_fns(kind, x, k):
  fn = downsample.conv_2x_down if kind == "down" else upsample.sub_pixel_2x
  fwd = jax.jit(fn)
  ct = jnp.ones_like(fwd(x, k))
  bwd = jax.jit(lambda x, k: jax.vjp(fn, x, k)[1](ct))
  return (lambda: fwd(x, k).block_until_ready(),
          lambda: jax.block_until_ready(bwd(x, k)))


def torch_fns(kind, x, k):
  x = torch.from_numpy(np.asarray(x).transpose(0, 3, 1, 2).copy())
  k = np.asarray(k)
  if kind == "down":  # HWIO -> OIHW
    w = torch.from_numpy(k.transpose(3, 2, 0, 1).copy())
    op = lambda x, w: torch.nn.functional.conv2d(x, w, stride=2, padding=1)
  else:  # flipped HWIO -> IOHW
    w = torch.from_numpy(k[::-1, ::-1].transpose(2, 3, 0, 1).copy())
    op = lambda x, w: torch.nn.functional.conv_transpose2d(x, w, stride=2,
                                                           padding=1)
  xg, wg = x.clone().requires_grad_(True), w.clone().requires_grad_(True)

  def fwd():
    with torch.no_grad():
      op(x, w)

  def fwd_bwd():
    op(xg, wg).sum().backward()
  return fwd, fwd_bwd


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  print(f"load before: {timing.load_average()}")
  print("| layer | GFLOP fwd | jax fwd ms | torch fwd ms | jax fwd+bwd ms | "
        "torch fwd+bwd ms | jax GFLOP/s (f+b) | torch GFLOP/s (f+b) |")
  print("|---" * 8 + "|")
  for kind, h, cin, cout in LAYERS:
    x = jax.random.normal(jax.random.key(0), (64, h, h, cin))
    k = 0.02 * jax.random.normal(jax.random.key(1), (4, 4, cin, cout))
    out = h // 2 if kind == "down" else h
    gflop = 2 * 64 * out * out * cin * cout * 16 / 1e9
    jf, jb = jax_fns(kind, x, k)
    tf, tb = torch_fns(kind, x, k)
    t = timing.interleaved({"jf": jf, "tf": tf, "jb": jb, "tb": tb},
                           args.repeats)
    m = {n: timing.median_ms(v) for n, v in t.items()}
    print(f"| {kind} {h}x{h}x{cin}->{cout} | {gflop:.2f} | {m['jf']:.1f} | "
          f"{m['tf']:.1f} | {m['jb']:.1f} | {m['tb']:.1f} | "
          f"{3 * gflop / m['jb'] * 1e3:.0f} | {3 * gflop / m['tb'] * 1e3:.0f} |",
          flush=True)
  print(f"load after: {timing.load_average()}")


if __name__ == "__main__":
  main()
