r"""Mode collapse: PacGAN's Table 1 and Table 2 reproduced, side by side.

  PYTHONPATH=. python experiments/mode_collapse.py            # ~30-40 min
  PYTHONPATH=. python experiments/mode_collapse.py --quick    # a smoke run

2D mixtures (ring of 8, grid of 25; PacGAN's protocol except where
PROTOCOL_CHANGES says otherwise): GAN, PacGAN2/3/4 and an unrolled GAN, each
`--seeds` seeds in one program (`config.train.num_seeds`). Stacked digits
(the 1000-mode analogue of stacked MNIST built from scikit-learn's 8x8 digits,
16x16x3): DCGAN against PacDCGAN2. Every run goes through the one training
loop (`gen_jax.train.train_and_evaluate`) in `--workdir/NAME`, whose
`samples/` hold a panel per seed.

Writes `experiments/results/mode_collapse.md` (our numbers, mean +- standard
error over seeds, next to the published ones), `mode_collapse.png` (the
comparison), `mode_collapse_samples_{ring,grid}.png` and
`mode_collapse_samples_stacked.png` (final samples of every method).
"""

import argparse
import importlib.util
import json
import os
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from gen_jax import train  # noqa: E402

RESULTS = os.path.join(REPO, "experiments", "results")

# PacGAN Table 1 (10 trials, mean +- standard error): modes, %HQ, reverse KL.
PUBLISHED_2D = {
    "ring": {"GAN": ((6.3, 0.5), (98.2, 0.2), (0.45, 0.09)),
             "PacGAN2": ((7.9, 0.1), (95.6, 2.0), (0.07, 0.03)),
             "PacGAN3": ((7.8, 0.1), (97.7, 0.3), (0.10, 0.02)),
             "PacGAN4": ((7.8, 0.1), (95.9, 1.4), (0.07, 0.02))},
    "grid": {"GAN": ((17.3, 0.8), (94.8, 0.7), (0.70, 0.07)),
             "PacGAN2": ((23.8, 0.7), (91.3, 0.8), (0.13, 0.04)),
             "PacGAN3": ((24.6, 0.4), (94.2, 0.4), (0.06, 0.02)),
             "PacGAN4": ((24.8, 0.2), (93.6, 0.6), (0.04, 0.01))},
}
# VEEGAN Table 1 (5 runs; modes / %HQ): the only published 2D unrolled GAN
# numbers, under VEEGAN's protocol, not PacGAN's.
PUBLISHED_UNROLLED = {"ring": "7.6 / 35.6 (VEEGAN's protocol)",
                      "grid": "23.6 / 16 (VEEGAN's protocol)"}
# PacGAN Table 2 (stacked MNIST, 28x28, 26,000 samples): modes, KL.
PUBLISHED_STACKED = {"DCGAN": ((78.9, 6.46), (4.50, 0.127)),
                     "PacDCGAN2": ((1000.0, 0.0), (0.06, 0.003))}


def load_config(name: str, arg: str):
  spec = importlib.util.spec_from_file_location(
      f"config_{name}", os.path.join(REPO, "configs", f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def methods_2d(unroll_steps: int) -> dict[str, dict]:
  out = {"GAN": {}}
  for m in (2, 3, 4):
    out[f"PacGAN{m}"] = {"gan.pack": m}
  if unroll_steps:
    out[f"Unrolled{unroll_steps}"] = {"gan.unroll_steps": unroll_steps}
  return out


def config_2d(dataset: str, overrides: dict, args):
  c = load_config("gan_2d", dataset)
  pack = overrides.get("gan.pack", 1)
  # PacGAN's batch is 100 *packs*: pack m draws 100 m real and fake points.
  c.data.batch_size = 100 * pack
  c.optim.g_lr = c.optim.d_lr = args.lr
  return finish(c, overrides, args.seeds, args.steps, 2500)


def config_stacked(overrides: dict, args):
  c = load_config("dcgan", "stacked_digits")
  pack = overrides.get("gan.pack", 1)
  c.data.batch_size = 64 * pack  # 64 packs, as PacGAN's DCGAN
  c.model.noise = "uniform"      # PacGAN's stacked-MNIST noise
  c.model.g_width = c.model.d_width = args.stacked_width
  return finish(c, overrides, args.stacked_seeds, args.stacked_steps,
                args.stacked_samples)


def finish(c, overrides: dict, seeds: int, steps: int, eval_samples: int):
  for key, value in overrides.items():
    section, field = key.split(".")
    c[section][field] = value
  c.seed = 0
  c.train.num_seeds = seeds
  c.train.num_steps = steps
  c.train.log_every = max(1, steps // 10)
  c.train.eval_every = c.train.checkpoint_every = steps
  c.train.keep_checkpoints = 1
  c.train.num_eval_samples = eval_samples
  c.wandb.mode = "disabled"
  return c


def run(name: str, c, workdir: str) -> dict:
  """Trains (or reuses a finished run in workdir); returns per-seed lists."""
  path = os.path.join(workdir, name)
  result_file = os.path.join(path, "result.json")
  if os.path.exists(result_file):
    with open(result_file) as f:
      return json.load(f)
  start = time.perf_counter()
  final = train.train_and_evaluate(c, path)
  seeds = [c.seed + i for i in range(c.train.num_seeds)]
  metrics = sorted({k.split("/seed_")[0] for k in final if "/seed_" in k})
  result = {"seeds": seeds, "minutes": (time.perf_counter() - start) / 60,
            "per_seed": {k: [final[f"{k}/seed_{s}"] for s in seeds]
                         for k in metrics if k.startswith("eval/")}}
  if c.train.num_seeds == 1:
    result["per_seed"] = {k: [v] for k, v in final.items()
                          if k.startswith("eval/")}
  with open(result_file, "w") as f:
    json.dump(result, f, indent=1)
  print(f"{name}: {result['minutes']:.1f} min", flush=True)
  return result


def mean_se(values) -> tuple[float, float]:
  v = np.asarray(values, np.float64)
  se = float(np.std(v, ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0
  return float(np.mean(v)), se


def fmt(mean: float, se: float, digits: int) -> str:
  return f"{mean:.{digits}f}±{se:.{digits}f}"


def table_2d(results: dict, dataset: str) -> list[str]:
  lines = [f"### {dataset.capitalize()} "
           f"({8 if dataset == 'ring' else 25} modes)", "",
           "| method | modes (ours) | modes (PacGAN) | %HQ (ours) | "
           "%HQ (PacGAN) | reverse KL, HQ samples (ours) | reverse KL, all "
           "samples (ours) | reverse KL (PacGAN) |",
           "|---|---|---|---|---|---|---|---|"]
  for method, r in results.items():
    p = r["per_seed"]
    ours = [fmt(*mean_se(p["eval/modes"]), 1), fmt(*mean_se(p["eval/hq"]), 1),
            fmt(*mean_se(p["eval/reverse_kl_hq"]), 2),
            fmt(*mean_se(p["eval/reverse_kl"]), 2)]
    pub = PUBLISHED_2D[dataset].get(method)
    if pub:
      published = [fmt(*pub[0], 1), fmt(*pub[1], 1), fmt(*pub[2], 2)]
    elif method.startswith("Unrolled"):
      published = [PUBLISHED_UNROLLED[dataset], "", ""]
    else:
      published = ["", "", ""]
    lines.append(f"| {method} | {ours[0]} | {published[0]} | {ours[1]} | "
                 f"{published[1]} | {ours[2]} | {ours[3]} | {published[2]} |")
  return lines


def table_stacked(results: dict, samples: int) -> list[str]:
  lines = ["| method | modes of 1000 (ours) | KL (ours) | FID, domain "
           "(ours) | modes (PacGAN) | KL (PacGAN) |", "|---|---|---|---|---|---|"]
  for method, r in results.items():
    p = r["per_seed"]
    pub = PUBLISHED_STACKED[method]
    lines.append(f"| {method} | {fmt(*mean_se(p['eval/modes']), 1)} | "
                 f"{fmt(*mean_se(p['eval/kl']), 2)} | "
                 f"{fmt(*mean_se(p['eval/fid']), 2)} | {fmt(*pub[0], 1)} | "
                 f"{fmt(*pub[1], 3)} |")
  return lines


def comparison_plot(results_2d: dict, results_stacked: dict,
                    path: str) -> None:
  """Ours (filled, +- standard error) next to PacGAN's (open) per metric."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  panels = [(d, i, name) for d in results_2d
            for i, name in enumerate(("modes", "%HQ", "reverse KL"))]
  cols = 3
  rows = len(results_2d) + (1 if results_stacked else 0)
  fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows),
                           squeeze=False)
  keys = ("eval/modes", "eval/hq", "eval/reverse_kl_hq")
  for dataset, i, name in panels:
    ax = axes[list(results_2d).index(dataset), i]
    methods = list(results_2d[dataset])
    x = np.arange(len(methods))
    ours = [mean_se(results_2d[dataset][m]["per_seed"][keys[i]])
            for m in methods]
    ax.errorbar(x - 0.1, [o[0] for o in ours], yerr=[o[1] for o in ours],
                fmt="o", color="tab:orange", label="ours")
    pub = [PUBLISHED_2D[dataset].get(m) for m in methods]
    px = [j for j, p in enumerate(pub) if p]
    ax.errorbar(np.asarray(px) + 0.1, [pub[j][i][0] for j in px],
                yerr=[pub[j][i][1] for j in px], fmt="o", mfc="none",
                color="black", label="PacGAN Table 1")
    ax.set_xticks(x, methods, fontsize=7)
    ax.set_title(f"{dataset}: {name}", fontsize=9)
    if i == 0:
      ax.axhline(8 if dataset == "ring" else 25, color="gray", lw=0.5)
    ax.legend(fontsize=6)
  if results_stacked:
    r = len(results_2d)
    methods = list(results_stacked)
    x = np.arange(len(methods))
    for i, (key, name) in enumerate((("eval/modes", "modes of 1000"),
                                     ("eval/kl", "KL"))):
      ax = axes[r, i]
      ours = [mean_se(results_stacked[m]["per_seed"][key]) for m in methods]
      ax.errorbar(x - 0.1, [o[0] for o in ours], yerr=[o[1] for o in ours],
                  fmt="o", color="tab:orange", label="ours (stacked digits)")
      ax.errorbar(x + 0.1, [PUBLISHED_STACKED[m][i][0] for m in methods],
                  yerr=[PUBLISHED_STACKED[m][i][1] for m in methods],
                  fmt="o", mfc="none", color="black",
                  label="PacGAN Table 2 (stacked MNIST)")
      ax.set_xticks(x, methods, fontsize=7)
      ax.set_title(f"stacked: {name}", fontsize=9)
      ax.legend(fontsize=6)
    axes[r, 2].set_axis_off()
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def sample_sheet(workdir: str, names: list[str], labels: list[str],
                 path: str) -> None:
  """The final sample PNGs of the runs, stacked vertically with labels."""
  from PIL import Image, ImageDraw
  images = []
  for name, label in zip(names, labels):
    folder = os.path.join(workdir, name, "samples")
    last = sorted(os.listdir(folder))[-1]
    im = Image.open(os.path.join(folder, last)).convert("RGB")
    canvas = Image.new("RGB", (im.width, im.height + 18), "white")
    canvas.paste(im, (0, 18))
    ImageDraw.Draw(canvas).text((4, 3), label, fill="black")
    images.append(canvas)
  width = max(im.width for im in images)
  sheet = Image.new("RGB", (width, sum(im.height for im in images)), "white")
  y = 0
  for im in images:
    sheet.paste(im, (0, y))
    y += im.height
  sheet.save(path)


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--workdir", default=os.path.join(REPO, "runs",
                                                   "mode_collapse"))
  p.add_argument("--seeds", type=int, default=4)
  p.add_argument("--steps", type=int, default=6000)
  p.add_argument("--lr", type=float, default=1e-4)
  p.add_argument("--unroll_steps", type=int, default=5)
  p.add_argument("--datasets", default="ring,grid")
  p.add_argument("--stacked_seeds", type=int, default=2)
  p.add_argument("--stacked_steps", type=int, default=2000)
  p.add_argument("--stacked_width", type=int, default=32)
  p.add_argument("--stacked_samples", type=int, default=10000)
  p.add_argument("--quick", action="store_true",
                 help="a few steps of everything (checks the script)")
  args = p.parse_args()
  if args.quick:
    args.steps, args.seeds, args.stacked_steps = 20, 2, 4
    args.stacked_samples, args.stacked_width = 200, 8
    args.workdir += "_quick"
  start = time.perf_counter()
  results_2d = {}
  for dataset in [d for d in args.datasets.split(",") if d]:
    results_2d[dataset] = {
        method: run(f"{dataset}_{method}", config_2d(dataset, over, args),
                    args.workdir)
        for method, over in methods_2d(args.unroll_steps).items()}
  results_stacked = {}
  if args.stacked_steps:
    for method, over in (("DCGAN", {}), ("PacDCGAN2", {"gan.pack": 2})):
      results_stacked[method] = run(f"stacked_{method}",
                                    config_stacked(over, args), args.workdir)
  minutes = (time.perf_counter() - start) / 60
  write_results(results_2d, results_stacked, args, minutes)


def protocol_changes(args) -> list[str]:
  return [
      f"Training length: {args.steps} generator steps per 2D run "
      "(PacGAN: 400 epochs of 1,000 steps = 400,000), "
      f"{args.stacked_steps} on stacked digits (PacGAN: 50 epochs of 128k "
      "stacks at batch 64 = 100,000).",
      f"Seeds: {args.seeds} per 2D method and {args.stacked_seeds} per "
      "stacked method (PacGAN: 10 trials; VEEGAN: 5).",
      f"Learning rate {args.lr:g} for both players"
      + (" (as PacGAN)." if args.lr == 1e-4 else " (PacGAN: 1e-4)."),
      "Discriminator: 3 x 200 LeakyReLU(0.2) MLP, not 3 maxout layers of "
      "200 units with 5 pieces; weights initialised with flax's defaults "
      "(LeCun normal, zero bias), not N(0, 0.02).",
      "Updates alternate (critic step, then generator step against the "
      "updated critic); PacGAN's ALI-based code updates both players "
      "simultaneously from one forward pass.",
      "Packing: a batch of 100 packs, as PacGAN (batch_size = 100 m), "
      "packs being consecutive points of a shuffled stream; PacGAN draws "
      "them from 100k pre-packed tuples resampled with replacement. The "
      "generator's batch norm sees all 100 m fakes of a step at once; "
      "PacGAN runs the generator on m separate batches of 100.",
      "Evaluation: 2,500 samples of the final generator (no EMA), modes "
      "and %HQ exactly as PacGAN's released MetricLogger (nearest mode, "
      "HQ within 3 standard deviations); its coverage histogram counts HQ "
      "samples only, so the reverse KL compared with PacGAN's is the "
      "'HQ samples' column; 'all samples' assigns every sample to its "
      "nearest mode.",
      f"Unrolled GAN: the generator minimises Metz et al.'s surrogate, the "
      "value function (negated critic loss) at the critic after "
      f"{args.unroll_steps} of its own Adam updates on the same batch, "
      "differentiated through (as their released code); its only published "
      "2D numbers (VEEGAN Table 1) use VEEGAN's protocol and networks, so "
      "they are shown for orientation, not comparison.",
      "Stacked digits instead of stacked MNIST: three of scikit-learn's 1,797 "
      "8x8 digits (1,500 for training) upsampled to 16x16, as RGB channels "
      f"(60k training stacks); DCGAN widths {args.stacked_width} (PacGAN: "
      "64); 100-d uniform noise, Adam 2e-4, beta1 0.5, batch 64 packs as "
      f"PacGAN; {args.stacked_samples} samples labelled by the project's "
      "digit classifier (VEEGAN/PacGAN: 26,000 with an MNIST classifier). "
      "Sample counts matter for 'modes': 10,000 uniform samples cover 1000 "
      "modes with expected 1000 (1 - e^-10) = 999.95.",
  ]


def write_results(results_2d, results_stacked, args, minutes) -> None:
  out = RESULTS if not args.quick else os.path.join(args.workdir, "results")
  os.makedirs(out, exist_ok=True)
  total = sum(r["minutes"] for rs in results_2d.values() for r in rs.values())
  total += sum(r["minutes"] for r in results_stacked.values())
  lines = ["# Mode collapse: PacGAN's tables reproduced", "",
           "Produced by `experiments/mode_collapse.py` (command and protocol "
           "below); mean ± standard error over seeds, each seed a separate "
           "run trained in one program with `config.train.num_seeds`.", ""]
  lines += [f"Command: `PYTHONPATH=. python experiments/mode_collapse.py "
            f"--seeds={args.seeds} --steps={args.steps} --lr={args.lr} "
            f"--unroll_steps={args.unroll_steps} "
            f"--stacked_seeds={args.stacked_seeds} "
            f"--stacked_steps={args.stacked_steps} "
            f"--stacked_width={args.stacked_width} "
            f"--stacked_samples={args.stacked_samples}`; "
            f"training time {total:.1f} min in all on a shared 2-core CPU.",
            ""]
  lines += ["## 2D mixtures (PacGAN Table 1)", ""]
  for dataset, results in results_2d.items():
    lines += table_2d(results, dataset) + [""]
  if results_stacked:
    lines += ["## Stacked digits (PacGAN Table 2)", ""]
    lines += table_stacked(results_stacked, args.stacked_samples) + [""]
  lines += ["![comparison](mode_collapse.png)", ""]
  for dataset in results_2d:
    lines += [f"![{dataset} samples](mode_collapse_samples_{dataset}.png)"]
  if results_stacked:
    lines += ["![stacked samples](mode_collapse_samples_stacked.png)"]
  lines += ["", "## What differs from the published protocols", ""]
  lines += [f"- {line}" for line in protocol_changes(args)]
  with open(os.path.join(out, "mode_collapse.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  comparison_plot(results_2d, results_stacked,
                  os.path.join(out, "mode_collapse.png"))
  for dataset, results in results_2d.items():
    sample_sheet(args.workdir, [f"{dataset}_{m}" for m in results],
                 list(results), os.path.join(
                     out, f"mode_collapse_samples_{dataset}.png"))
  if results_stacked:
    sample_sheet(args.workdir, [f"stacked_{m}" for m in results_stacked],
                 [f"{m}: a row of samples per seed" for m in results_stacked],
                 os.path.join(out, "mode_collapse_samples_stacked.png"))
  print(f"wrote {out} ({minutes:.1f} min)")


if __name__ == "__main__":
  main()
