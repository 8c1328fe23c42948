"""What the experiment scripts share: configs by name, one run of many seeds
through the training loop, mean +- standard error, tables and sample sheets."""

import importlib.util
import json
import os
import sys
import time

import jax
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
  sys.path.insert(0, REPO)

from gen_jax import train  # noqa: E402

RESULTS = os.path.join(REPO, "experiments", "results")


def load_config(name: str, arg: str):
  """configs/NAME.py's get_config(arg)."""
  spec = importlib.util.spec_from_file_location(
      f"config_{name}", os.path.join(REPO, "configs", f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def override(c, overrides: dict) -> None:
  """Sets dotted config paths: {'gan.pack': 2} -> c.gan.pack = 2."""
  for key, value in overrides.items():
    *sections, field = key.split(".")
    node = c
    for section in sections:
      node = node[section]
    node[field] = value


def finish(c, *, seeds: int, steps: int, evals: int, eval_samples: int,
           seed: int = 0):
  """`seeds` runs of `steps` in one program, evaluated `evals` times (the
  last at the end) on `eval_samples` samples each, whose arrays are kept."""
  c.seed = seed
  c.train.num_seeds = seeds
  c.train.num_steps = steps
  c.train.log_every = max(1, steps // 10)
  c.train.eval_every = max(1, steps // evals)
  c.train.checkpoint_every = steps
  c.train.keep_checkpoints = 1
  c.train.num_eval_samples = eval_samples
  c.train.save_eval_samples = True
  c.wandb.mode = "disabled"
  c.mesh.num_devices = seed_devices(seeds, jax.device_count())
  return c


def seed_devices(seeds: int, devices: int) -> int:
  """The most devices (at most `devices`) that split `seeds` whole runs
  evenly: 10 seeds on 8 GPUs use 5 of them."""
  return max(d for d in range(1, min(seeds, devices) + 1) if seeds % d == 0)


def run(name: str, c, workdir: str) -> dict:
  """Trains config `c` in workdir/NAME, or reuses a finished run there.

  Returns {'name', 'seeds', 'minutes', 'workdir', 'evals': [{'step', metric:
  [one value per seed]}...]} with every evaluation of the run, the last being
  the final one; its samples are workdir/NAME/samples/step_NNNNNNN.npy.
  """
  path = os.path.join(workdir, name)
  result_file = os.path.join(path, "result.json")
  if os.path.exists(result_file):
    with open(result_file) as f:
      return json.load(f)
  start = time.perf_counter()
  train.train_and_evaluate(c, path)
  seeds = [c.seed + i for i in range(c.train.num_seeds)]
  result = {"name": name, "seeds": seeds, "workdir": path,
            "minutes": (time.perf_counter() - start) / 60,
            "evals": eval_history(os.path.join(path, "metrics.jsonl"), seeds)}
  tmp = result_file + ".tmp"
  with open(tmp, "w") as f:
    json.dump(result, f, indent=1)
  os.replace(tmp, result_file)
  print(f"{name}: {result['minutes']:.1f} min", flush=True)
  return result


def eval_history(metrics_file: str, seeds: list[int]) -> list[dict]:
  """Every evaluation in metrics.jsonl as {'step', 'eval/K': [per seed]}."""
  evals = []
  with open(metrics_file) as f:
    for line in f:
      record = json.loads(line)
      if not any(k.startswith("eval/") for k in record):
        continue
      out = {"step": record["step"]}
      names = {k.split("/seed_")[0] for k in record
               if k.startswith("eval/") and not k.endswith("_se")}
      for k in sorted(names):
        if len(seeds) == 1:
          out[k] = [record[k]]
        else:
          out[k] = [record[f"{k}/seed_{s}"] for s in seeds]
      evals.append(out)
  return evals


def samples_file(result: dict, step: int | None = None) -> str:
  """The .npy of the run's evaluation at `step` (default: the last)."""
  step = result["evals"][-1]["step"] if step is None else step
  return os.path.join(result["workdir"], "samples", f"step_{step:07d}.npy")


def mean_se(values) -> tuple[float, float]:
  """Mean and standard error of the mean (std with ddof 1 / sqrt(n))."""
  v = np.asarray(values, np.float64)
  se = float(np.std(v, ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0
  return float(np.mean(v)), se


def fmt(mean: float, se: float, digits: int) -> str:
  return f"{mean:.{digits}f}±{se:.{digits}f}"


def outside(ours: tuple[float, float], published: tuple[float, float]) -> bool:
  """Whether the two mean +- standard error intervals do not overlap."""
  return (abs(ours[0] - published[0]) > ours[1] + published[1])


def write_atomic(path: str, text: str) -> None:
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.write(text)
  os.replace(tmp, path)


def sample_sheet(images: list[np.ndarray], labels: list[str],
                 path: str) -> None:
  """RGB uint8 images stacked vertically, each under its label."""
  from PIL import Image, ImageDraw
  tiles = []
  for image, label in zip(images, labels):
    im = Image.fromarray(image).convert("RGB")
    canvas = Image.new("RGB", (im.width, im.height + 18), "white")
    canvas.paste(im, (0, 18))
    ImageDraw.Draw(canvas).text((4, 3), label, fill="black")
    tiles.append(canvas)
  width = max(t.width for t in tiles)
  sheet = Image.new("RGB", (width, sum(t.height for t in tiles)), "white")
  y = 0
  for t in tiles:
    sheet.paste(t, (0, y))
    y += t.height
  sheet.save(path)
