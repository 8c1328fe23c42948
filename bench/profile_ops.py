"""Per-operation time of one gen_jax train step, from a jax.profiler trace.

  PYTHONPATH=. python bench/profile_ops.py --case wgan_gp16 [--top 25]

Runs the compiled step a few times under `jax.profiler`, sums the XLA CPU
thunk events by HLO instruction name, and prints the slowest with their
share of the step, their HLO (shape, window) and the JAX op that made them.
"""

import argparse
import collections
import glob
import gzip
import json
import re
import tempfile

import jax

from bench import train_steps


def hlo_index(hlo_text: str) -> tuple[dict[str, str], dict[str, str]]:
  """HLO instruction name -> (short description, source layer).

  A fusion's source is the first JAX op_name found in its fused computation
  (convolutions and dots first), so that fusions group by layer.
  """
  sources: dict[str, str] = {}   # computation name -> op_name
  computation = None
  index, calls = {}, {}
  for line in hlo_text.splitlines():
    head = re.match(r"\s*%?([\w.\-]+) .*\{\s*$", line)
    if head and "=" not in line.split("{")[0]:
      computation = head.group(1)
    source = re.search(r'op_name="([^"]*)"', line)
    if computation and source and (computation not in sources
                                   or " convolution(" in line
                                   or " dot(" in line):
      if computation not in sources or "conv" not in sources[computation]:
        sources[computation] = source.group(1)
    m = re.match(r"\s*(?:ROOT )?%?([\w.\-]+) = (\S+) (\w[\w\-]*)\((.*)", line)
    if not m:
      continue
    name, shape, op, rest = m.groups()
    window = re.search(r"window=\{([^}]*)\}", rest)
    labels = re.search(r"dim_labels=(\S+),", rest)
    called = re.search(r"calls=%?([\w.\-]+)", rest)
    parts = [op, shape]
    if window:
      parts.append(window.group(1))
    if labels:
      parts.append(labels.group(1))
    index[name] = " ".join(parts)
    calls[name] = (source.group(1) if source else
                   sources.get(called.group(1), name) if called else name)
  layers = calls
  return index, layers


def layer_of(op_name: str) -> str:
  """'jit(train_step)/transpose(jvp(Discriminator))/Conv_1/...' ->
  'Discriminator/Conv_1 backward'."""
  module = re.search(r"(Generator|Discriminator|VAE)\)*/([A-Za-z]+_?\d*)",
                     op_name)
  if not module and op_name.startswith("ynn_fusion"):
    # YNNPACK convolutions whose fused computation kept no metadata: in these
    # models, the sub-pixel generator layers' kernel gradients.
    return "unattributed YNNPACK convolutions (generator kernel gradients)"
  if not module:
    return "other (optimizer, losses, RNG, copies)"
  direction = "backward" if "transpose(" in op_name else "forward"
  return f"{module.group(1)}/{module.group(2)} {direction}"


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--case", default="dcgan64")
  parser.add_argument("--upsample", default="")
  parser.add_argument("--steps", type=int, default=3)
  parser.add_argument("--top", type=int, default=25)
  args = parser.parse_args()
  case = train_steps.CASES[args.case]
  run, _, _, _, compiled = train_steps.gen_jax_step(case, args.upsample)
  run()
  trace_dir = tempfile.mkdtemp(prefix="gen_jax_trace_")
  jax.profiler.start_trace(trace_dir)
  for _ in range(args.steps):
    run()
  jax.profiler.stop_trace()
  path = sorted(glob.glob(f"{trace_dir}/**/*.trace.json.gz", recursive=True))[-1]
  events = json.load(gzip.open(path))["traceEvents"]
  total = collections.Counter()
  for e in events:
    if e.get("ph") == "X":
      total[e["name"]] += e["dur"] / 1e3 / args.steps  # ms per step
  step_ms = total.get("ThunkExecutor::Execute", 0.0)
  index, layers = hlo_index(compiled.as_text())
  print(f"{args.case}: {step_ms:.1f} ms per step in XLA thunks\n")
  print("| ms/step | % | HLO op | what | layer |")
  print("|---|---|---|---|---|")
  shown = 0
  for name, ms in total.most_common():
    if name not in index:
      continue
    print(f"| {ms:.1f} | {100 * ms / step_ms:.0f}% | {name} | {index[name]} | "
          f"{layer_of(layers[name])} |")
    shown += 1
    if shown == args.top:
      break
  by_layer = collections.Counter()
  for name, ms in total.items():
    if name in index:
      by_layer[layer_of(layers[name])] += ms
  print("\n| layer | ms/step | % |\n|---|---|---|")
  for layer, ms in sorted(by_layer.items(), key=lambda kv: -kv[1]):
    print(f"| {layer} | {ms:.1f} | {100 * ms / step_ms:.0f}% |")


if __name__ == "__main__":
  main()
