"""The machine's float32 matmul ceiling, measured with a large jitted matmul.

  PYTHONPATH=. python bench/peak.py
"""

import jax
import jax.numpy as jnp
import numpy as np
import torch

from bench import timing


def matmul_peak(sizes: tuple[int, ...] = (2048, 3072), repeats: int = 7
                ) -> dict[str, float]:
  """Best-over-sizes median GFLOP/s of an n x n float32 matmul: jax (jitted,
  full float32 precision), numpy and PyTorch, interleaved."""
  best: dict[str, float] = {}
  for n in sizes:
    a = np.random.default_rng(0).standard_normal((n, n), np.float32)
    ja = jnp.asarray(a)
    ta = torch.from_numpy(a)
    mm = jax.jit(lambda x: jnp.matmul(x, x, precision="highest"))
    fns = {"jax": lambda: mm(ja).block_until_ready(),
           "numpy": lambda: a @ a,
           "torch": lambda: ta @ ta}
    times = timing.interleaved(fns, repeats)
    for name, t in times.items():
      gflops = 2 * n ** 3 / (timing.median_ms(t) * 1e-3) / 1e9
      best[name] = max(best.get(name, 0.0), gflops)
  return best


if __name__ == "__main__":
  print(f"load before: {timing.load_average()}")
  for name, gflops in matmul_peak().items():
    print(f"{name}: {gflops:.0f} GFLOP/s")
  print(f"load after: {timing.load_average()}")
