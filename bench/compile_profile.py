r"""Where a config's time to first step goes, per compiled program.

    PYTHONPATH=. python bench/compile_profile.py sngan biggan pix2pix
    PYTHONPATH=. python bench/compile_profile.py cyclegan --hlo

For each config (default argument, one CPU device, as `bench/loop.py
--compile`), builds `train.setup` and, for `init` and the first phase's
step, times separately: tracing (`jit(f).trace`), lowering to StableHLO,
XLA's backend compile, and the first execution; seconds of wall time and
CPU. `--hlo` adds the optimised program's size (HLO instructions, and
convolutions among them). Evaluation programs run after the first step and
are not on its path.
"""

import argparse
import os
import re
import sys
import time

import jax

from gen_jax import train

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import loop  # noqa: E402  (bench/loop.py)
import timing  # noqa: E402


def _timed(fn):
  t, c = time.perf_counter(), time.process_time()
  out = fn()
  jax.block_until_ready(out) if not hasattr(out, "compile") else None
  return out, time.perf_counter() - t, time.process_time() - c


def hlo_counts(compiled) -> str:
  text = compiled.as_text()
  ops = re.findall(r"^\s+(?:ROOT )?%?\S+ = \S+ (\w[\w-]*)\(", text,
                   re.MULTILINE)
  return f"{len(ops)} ops, {ops.count('convolution')} conv, " \
         f"{ops.count('while')} while"


def profile(name: str, hlo: bool) -> list[str]:
  config = loop.case_config(loop.Case(name, False), 2, 1)
  rows = []
  (s, t, c) = _timed(lambda: train.setup(config))
  rows.append(f"| {name} | setup | | | | {t:.2f} ({c:.2f}) | |")
  print(rows[-1], flush=True)
  batch = s.batch(s.stream())
  programs = [("init", s.init, (s.key,)), ("step", s.train_step, None)]
  state = None
  for prog, fn, args in programs:
    args = args if args is not None else (state, batch)
    traced, t_trace, c_trace = _timed(lambda: fn.trace(*args))
    lowered, t_lower, c_lower = _timed(traced.lower)
    compiled, t_comp, c_comp = _timed(lowered.compile)
    out, t_run, c_run = _timed(lambda: compiled(*args))
    if prog == "init":
      state = out
    extra = hlo_counts(compiled) if hlo else ""
    rows.append(f"| {name} | {prog} | {t_trace:.2f} ({c_trace:.2f}) | "
                f"{t_lower:.2f} ({c_lower:.2f}) | {t_comp:.2f} ({c_comp:.2f})"
                f" | {t_run:.2f} ({c_run:.2f}) | {extra} |")
    print(rows[-1], flush=True)
  return rows


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("configs", nargs="+")
  parser.add_argument("--hlo", action="store_true")
  args = parser.parse_args()
  print(f"jax {jax.__version__}, load {timing.load_average()}")
  print("| config | program | trace s (CPU) | lower | XLA compile | first run "
        "| HLO |\n|---|---|---|---|---|---|---|", flush=True)
  for name in args.configs:
    profile(name, args.hlo)
  print(f"load {timing.load_average()}")


if __name__ == "__main__":
  main()
