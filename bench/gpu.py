r"""Images per second on one GPU: gen_jax against PyTorch, float32 and bfloat16.

    pip install -e .[bench] 'jax[cuda12]'     # on the GPU machine
    PYTHONPATH=. python bench/gpu.py [--steps=50] [--write]

For DCGAN-64 (configs/dcgan.py:celeb_a) and WGAN-GP at 64 px
(configs/wgan_gp.py:celeb_a: n_critic 5, so 320 real images a step): the
step `train.setup` compiles (one device, the state donated, the non-finite
guard included) on a batch already on the GPU, against the same architecture
and update in PyTorch (bench/torch_reference.py) on pre-made GPU batches.
bfloat16 is `config.model.compute_dtype='bfloat16'` (parameters, optimizer
state and losses float32) against `torch.autocast(dtype=torch.bfloat16)`.
Times are medians over `--steps` steps after 5 warm-up steps, each waited
for (`block_until_ready`, `torch.cuda.synchronize`), gen_jax and PyTorch
alternating in rounds of 10. `--write` puts the table into BENCHMARKS.md
between the `gpu-table` markers. Exits with a message when there is no GPU.
"""

import argparse
import os
import re
import statistics
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import loop  # noqa: E402  (bench/loop.py: config loading)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = {  # name: (config, torch reference, resolution, channels)
    "dcgan64": ("dcgan:celeb_a", "dcgan_step", 64, 3),
    "wgan_gp64": ("wgan_gp:celeb_a", "wgan_gp_step", 64, 3),
}
MARK = ("<!-- gpu-table -->", "<!-- /gpu-table -->")


def jax_step(spec: str, dtype: str):
  """(run one step and wait, images per step): the loop's trainer (guard
  included) on random data of the config's shape; no dataset is read."""
  from gen_jax import parallel, train
  from gen_jax.data.base import DatasetInfo
  config = loop.load_config(spec)
  config.mesh.num_devices = 1
  config.model.compute_dtype = dtype
  s = config.data.image_size
  info = DatasetInfo(name=config.data.name, kind="image",
                     example_shape=(s, s, 3),
                     value_range=tuple(config.data.value_range),
                     num_train=1 << 20)
  mesh = parallel.make_mesh(config.mesh.shape, config.mesh.axes, 1)
  trainer = train.build_trainer(config, info, mesh)
  state = jax.jit(trainer.init)(jax.random.key(0))
  n = trainer.batches_per_step
  x = np.random.default_rng(0).uniform(
      -1, 1, (n, config.data.batch_size, s, s, 3)).astype(np.float32)
  batch = {"x": jax.device_put(x)}
  step = jax.jit(trainer.train_step, donate_argnums=0)
  holder = [state]

  def run():
    holder[0], metrics = step(holder[0], batch)
    jax.block_until_ready(metrics)
  return run, n * config.data.batch_size


def torch_step(fn: str, res: int, ch: int, n: int, batch: int, dtype: str):
  import torch
  import torch_reference
  kwargs = {"device": "cuda",
            "dtype": torch.bfloat16 if dtype == "bfloat16" else None}
  step = getattr(torch_reference, fn)(res, ch, batch=batch, **kwargs)
  x = torch.rand(n, batch, ch, res, res, device="cuda") * 2 - 1
  x = x if n > 1 else x[0]

  def run():
    step(x)
    torch.cuda.synchronize()
  return run


def measure(fns: dict, steps: int) -> dict:
  for fn in fns.values():
    for _ in range(5):
      fn()
  times = {k: [] for k in fns}
  while len(times[next(iter(fns))]) < steps:
    for name, fn in fns.items():
      for _ in range(10):
        t = time.perf_counter()
        fn()
        times[name].append(time.perf_counter() - t)
  return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=50)
  parser.add_argument("--write", action="store_true")
  args = parser.parse_args()
  if jax.default_backend() != "gpu":
    sys.exit(f"bench/gpu.py: JAX sees no GPU (backend "
             f"{jax.default_backend()!r}); install jax[cuda12] on a GPU "
             "machine")
  import torch
  if not torch.cuda.is_available():
    sys.exit("bench/gpu.py: PyTorch sees no GPU")
  gpu = torch.cuda.get_device_name(0)
  rows = ["| case | dtype | gen_jax img/s | PyTorch img/s | gen_jax / "
          "PyTorch speed |", "|---|---|---|---|---|"]
  for name, (spec, fn, res, ch) in CASES.items():
    for dtype in ("float32", "bfloat16"):
      run, images = jax_step(spec, dtype)
      config = loop.load_config(spec)
      t_run = torch_step(fn, res, ch, config.gan.n_critic,
                         config.data.batch_size, dtype)
      med = measure({"jax": run, "torch": t_run}, args.steps)
      j, t = images / med["jax"], images / med["torch"]
      rows.append(f"| {name} | {dtype} | {j:.0f} | {t:.0f} | {j / t:.2f}x |")
      print(rows[-1], flush=True)
  table = (f"{gpu}; jax {jax.__version__}, torch {torch.__version__}; "
           f"median of {args.steps} steps.\n\n" + "\n".join(rows))
  print(table)
  if args.write:
    path = os.path.join(ROOT, "BENCHMARKS.md")
    text = open(path).read()
    pattern = re.escape(MARK[0]) + ".*?" + re.escape(MARK[1])
    block = f"{MARK[0]}\n{table}\n{MARK[1]}"
    text = (re.sub(pattern, lambda _: block, text, flags=re.S)
            if MARK[0] in text else text + "\n" + block + "\n")
    with open(path, "w") as f:
      f.write(text)


if __name__ == "__main__":
  main()
