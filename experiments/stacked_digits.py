r"""Stacked digits: DCGAN, PacDCGAN2 and WGAN-GP beside PacGAN's Table 2.

  PYTHONPATH=. python experiments/stacked_digits.py          # ~16 min, 2 cores
  PYTHONPATH=. python experiments/stacked_digits.py --quick  # a smoke run

Stacked digits are the 1000-mode analogue of stacked MNIST built from
scikit-learn's 8x8 digits (16x16x3). `--dataset=stacked_mnist` selects the
real thing, which needs it prepared (`python -m gen_jax.prepare_data
stacked_mnist`; without it the script says so in one line and exits 2) and
is scored by the MNIST classifier, trained from the same TFDS data on first
use and cached (gen_jax/metrics/classifier.py).
Each method is one run of `--seeds` seeds in one program
(`config.train.num_seeds`) through the one training loop, in
`--workdir/NAME` (NAME holds the flags); a finished run there is reused.

Writes to `--out`: `results.json` (every seed of every method: its metrics,
evaluation history and final samples .npy), `results.md` (ours, mean +-
standard error, next to the published numbers; where ours falls outside the
published error bar, the likely reason; the protocol differences),
`samples.png` (a row of final samples per seed) and `comparison.png`.
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

from gen_jax.errors import UserError  # noqa: E402

METHODS = ("DCGAN", "PacDCGAN2", "WGAN-GP")
DATASETS = ("stacked_digits", "stacked_mnist")
METRICS = (("modes", "eval/modes", 1), ("kl", "eval/kl", 3),
           ("fid", "eval/fid", 2))  # name, metrics.jsonl key, digits shown

# PacGAN Table 2 (stacked MNIST, VEEGAN's protocol: 26,000 samples), mean +-
# standard error; VEEGAN Table 2's DCGAN (5 runs, no error bars) beside it.
PUBLISHED = {
    "DCGAN": {"modes": (78.9, 6.46), "kl": (4.50, 0.127),
              "other": "VEEGAN: 99 / 3.4"},
    "PacDCGAN2": {"modes": (1000.0, 0.0), "kl": (0.06, 0.003)},
}
NO_PUBLISHED = "none published for stacked MNIST"
PUBLISHED_STEPS = 100_000  # 50 epochs of 128k stacks at batch 64
PUBLISHED_WIDTH = 64
PUBLISHED_SAMPLES = 26_000


def method_config(method: str, args):
  """The config of one method, `--seeds` runs in one program."""
  if method == "WGAN-GP":  # its own defaults: n_critic 5, lambda 10, Adam 1e-4
    c = common.load_config("wgan_gp", args.dataset)
  else:
    c = common.load_config("dcgan", args.dataset)
    pack = 2 if method == "PacDCGAN2" else 1
    c.gan.pack = pack
    c.data.batch_size = 64 * pack  # 64 packs, as PacGAN's DCGAN
    c.model.noise = "uniform"      # PacGAN's stacked-MNIST noise (100-d)
  c.model.dcgan.g_width = c.model.dcgan.d_width = args.width
  return common.finish(c, seeds=args.seeds, steps=args.steps,
                       evals=args.evals, eval_samples=args.samples)


def run_name(method: str, args) -> str:
  """Names the settings too, so that a changed flag never reuses a run."""
  return (f"{args.dataset}_{method}_w{args.width}_steps{args.steps}_"
          f"seeds{args.seeds}_n{args.samples}_evals{args.evals}")


def check_dataset(c):
  """The dataset of config `c`, or a UserError (one line) when it is missing
  or cannot be scored (no digit classifier or not 1000 modes)."""
  from gen_jax import data
  dataset = data.get_dataset(c.data)  # a DataError when not prepared
  extras = dataset.info.extras
  if extras.get("num_modes") != 1000 or "classifier" not in extras:
    raise UserError(
        f"dataset {c.data.name!r} has no digit classifier "
        "(info.extras['classifier']), so modes and KL cannot be measured; "
        "register one in gen_jax/metrics/classifier.py CLASSIFIER_DATA and "
        "name it in the dataset's extras")
  return dataset


def held_out(dataset, n: int) -> np.ndarray:
  """The first n held-out real stacks: the set the training loop compares
  samples with."""
  parts, count = [], 0
  for batch in dataset.eval_batches(local_batch_size=min(n, 1000),
                                    process_index=0, process_count=1):
    parts.append(batch["x"][batch["mask"] > 0])
    count += len(parts[-1])
    if count >= n:
      break
  return np.concatenate(parts)[:n]


def real_reference(dataset, real: np.ndarray) -> dict:
  """Modes and KL of real stacks scored like the samples: the best that this
  classifier and sample count can report."""
  from gen_jax import metrics
  info = dataset.info
  classifier = metrics.get_classifier(info.extras["classifier"],
                                      info.example_shape[0],
                                      data_dir=info.extras.get("data_dir"))
  m = metrics.stacked_mode_metrics(real, classifier, info.value_range)
  return {"samples": len(real), "modes": float(m["modes"]),
          "kl": float(m["kl"])}


# -- results.json -------------------------------------------------------------

def entries(method: str, dataset: str, result: dict) -> list[dict]:
  """One results.json entry per seed of a `common.run` result."""
  history = result["evals"]
  samples = common.samples_file(result)
  if not os.path.relpath(samples, common.REPO).startswith(".."):
    samples = os.path.relpath(samples, common.REPO)  # committed results
  out = []
  for i, seed in enumerate(result["seeds"]):
    per_eval = [{"step": e["step"],
                 **{name: e[key][i] for name, key, _ in METRICS if key in e}}
                for e in history]
    out.append({
        "method": method, "dataset": dataset, "seed": seed,
        # (seeds, N, H, W, 3) with several seeds, else (N, H, W, 3); a path
        # relative to the repository when inside it
        "samples": samples,
        "samples_index": i if len(result["seeds"]) > 1 else None,
        "metrics": {k: v for k, v in per_eval[-1].items() if k != "step"},
        "history": per_eval,
        "run_minutes": result["minutes"]})  # the whole run, all seeds
  return out


def load_samples(entry: dict) -> np.ndarray:
  """(N, H, W, 3) final samples of one results.json entry."""
  x = np.load(os.path.join(common.REPO, entry["samples"]), mmap_mode="r")
  return np.asarray(x if entry["samples_index"] is None
                    else x[entry["samples_index"]])


def by_method(runs: list[dict]) -> dict[str, list[dict]]:
  out: dict[str, list[dict]] = {}
  for r in runs:
    out.setdefault(r["method"], []).append(r)
  return out


# -- results.md ---------------------------------------------------------------

def summary(runs: list[dict], metric: str) -> tuple[float, float]:
  return common.mean_se([r["metrics"][metric] for r in runs])


def still_improving(runs: list[dict], metric: str) -> tuple | None:
  """(step_a, mean_a, step_b, mean_b) when the mean over seeds moved in the
  good direction (modes up, KL down) between the last two evaluations by
  more than the standard error of either; else None."""
  history = runs[0]["history"]
  if len(history) < 2:
    return None
  sign = 1.0 if metric == "modes" else -1.0
  a = common.mean_se([r["history"][-2][metric] for r in runs])
  b = common.mean_se([r["history"][-1][metric] for r in runs])
  if sign * (b[0] - a[0]) > max(a[1], b[1]):
    return history[-2]["step"], a[0], history[-1]["step"], b[0]
  return None


def reason(metric: str, ours: tuple[float, float],
           published: tuple[float, float], runs: list[dict],
           real: dict | None, settings: dict) -> str:
  """Why ours (mean, se) lies outside the published error bar: measurement
  (ours is as good as real data score here, and they fall short of the
  published value), else schedule (worse, and still improving at the end),
  else protocol (the listed differences), else a finding."""
  digits = 1 if metric == "modes" else 3
  sign = 1.0 if metric == "modes" else -1.0  # +: larger is better
  worse = sign * (published[0] - ours[0]) > 0
  # Real data score below even the published error bar's weaker edge.
  short = real is not None and sign * (
      published[0] - sign * published[1] - real[metric]) > 0
  real_note = (f"held-out real stacks score {real[metric]:.{digits}f} here "
               f"({real['samples']:,} samples, our classifier)"
               if short else "")
  if worse and short and sign * (real[metric] - ours[0]) <= ours[1]:
    return (f"measurement: {real_note}, no better than ours; PacGAN used "
            f"{PUBLISHED_SAMPLES:,} samples")
  moved = still_improving(runs, metric)
  differences = protocol_short(settings)
  if worse and moved is not None:
    a, va, b, vb = moved
    text = (f"schedule: still improving at the end ({va:.{digits}f} at step "
            f"{a} -> {vb:.{digits}f} at {b}; PacGAN: ~{PUBLISHED_STEPS:,} "
            "steps)")
  elif differences:
    text = "protocol: " + ", ".join(differences) + " (see below)"
  else:
    text = "finding: not explained by the sample count, schedule or protocol"
  return text + (f"; {real_note}" if real_note else "")


def protocol_short(settings: dict) -> list[str]:
  out = []
  if settings["dataset"] != "stacked_mnist":
    out.append("stacked digits, not stacked MNIST")
  if settings["width"] != PUBLISHED_WIDTH:
    out.append(f"width {settings['width']} (PacGAN: {PUBLISHED_WIDTH})")
  if settings["steps"] < PUBLISHED_STEPS:
    out.append(f"{settings['steps']:,} steps (PacGAN: "
               f"~{PUBLISHED_STEPS:,})")
  return out


def table(runs: list[dict], real: dict | None, settings: dict) -> list[str]:
  """The markdown table: ours (mean +- standard error over seeds) beside the
  published numbers, with a flag and a reason where ours is outside."""
  lines = ["| method | seeds | modes of 1000 (ours) | modes (published) | "
           "KL (ours) | KL (published) | FID, domain (ours) | outside the "
           "published error bar? |", "|---|---|---|---|---|---|---|---|"]
  for method, group in by_method(runs).items():
    ours = {name: summary(group, name) for name, _, _ in METRICS
            if all(name in r["metrics"] for r in group)}
    cells = {name: common.fmt(*ours[name], d) if name in ours else "n/a"
             for name, _, d in METRICS}
    pub = PUBLISHED.get(method)
    if pub is None:
      published = {"modes": NO_PUBLISHED, "kl": NO_PUBLISHED}
      verdict = "no published number"
    else:
      published = {m: common.fmt(*pub[m], d) for m, _, d in METRICS[:2]}
      if "other" in pub:
        published["modes"] += f" (PacGAN; {pub['other']})"
      reasons: dict[str, list[str]] = {}  # reason -> metrics outside
      for m, _, _ in METRICS[:2]:
        if m in ours and common.outside(ours[m], pub[m]):
          why = reason(m, ours[m], pub[m], group, real, settings)
          reasons.setdefault(why, []).append(m)
      verdict = "; ".join(f"**outside** ({', '.join(ms)}): {why}"
                          for why, ms in reasons.items()) or "inside"
    lines.append(f"| {method} | {len(group)} | {cells['modes']} | "
                 f"{published['modes']} | {cells['kl']} | {published['kl']} | "
                 f"{cells['fid']} | {verdict} |")
  if real is not None:
    lines.append(f"| real held-out stacks ({real['samples']}) | | "
                 f"{real['modes']:.0f} | | {real['kl']:.3f} | | | what real "
                 "data score here |")
  return lines


def per_seed_table(runs: list[dict]) -> list[str]:
  lines = ["| method | seed | modes | KL | FID, domain | modes at each "
           "evaluation |", "|---|---|---|---|---|---|"]
  for r in runs:
    m = r["metrics"]
    trail = " → ".join(f"{e['modes']:.0f}" for e in r["history"]
                       if "modes" in e)
    lines.append(f"| {r['method']} | {r['seed']} | "
                 f"{m.get('modes', float('nan')):.0f} | "
                 f"{m.get('kl', float('nan')):.3f} | "
                 f"{m.get('fid', float('nan')):.2f} | {trail} |")
  return lines


def protocol_changes(settings: dict) -> list[str]:
  s = settings
  data = (
      "Stacked digits instead of stacked MNIST: three of scikit-learn's 1,797 "
      "8x8 digits (1,500 for training) upsampled to 16x16, as RGB channels "
      "(60k training stacks; PacGAN: 128k stacks of 28x28 MNIST digits); "
      "modes and KL from the project's digit classifier (PacGAN: an MNIST "
      "classifier)."
      if s["dataset"] == "stacked_digits" else
      "Stacked MNIST as prepared by `gen_jax.prepare_data`: as many stacks "
      "per split as MNIST has digits (60k for training; PacGAN: 128k).")
  return [
      data,
      f"Training length: {s['steps']:,} generator steps per run (PacGAN: 50 "
      f"epochs of 128k stacks at batch 64 = {PUBLISHED_STEPS:,}); WGAN-GP "
      "takes 5 critic steps per generator step.",
      f"Seeds: {s['seeds']} per method (PacGAN: 10 trials; VEEGAN: 5 runs).",
      f"DCGAN widths {s['width']} for the generator and critic (PacGAN: "
      f"{PUBLISHED_WIDTH}). DCGAN and PacDCGAN2: 100-d uniform noise, Adam "
      "2e-4, beta1 0.5, a batch of 64 packs, as PacGAN (PacDCGAN2: 128 "
      "images). WGAN-GP: configs/wgan_gp.py's own settings (gradient "
      "penalty lambda 10, n_critic 5, Adam 1e-4 with betas (0, 0.9), layer "
      "norm in the critic, normal noise, batch 64).",
      f"Evaluation: {s['samples']:,} samples of each final generator (no "
      f"EMA; PacGAN/VEEGAN: {PUBLISHED_SAMPLES:,}). The count matters: a "
      "perfect (uniform) generator covers on average {:.2f} modes and scores "
      "KL {:.3f} with {:,} samples ({:.2f} and {:.3f} with {:,}), the KL "
      "being the plug-in estimator's bias; the 'real held-out stacks' row "
      "adds the classifier's errors.".format(
          *uniform_scores(s["samples"]), s["samples"],
          *uniform_scores(PUBLISHED_SAMPLES), PUBLISHED_SAMPLES),
      "The reasons given for a number outside the published error bar are "
      "rule-based: 'measurement' when real data cannot reach the published "
      "value under our protocol, 'schedule' when the metric still improved "
      "over the last evaluation interval (by more than a standard error), "
      "'protocol' when the dataset, width or length differ, else 'finding'.",
  ]


def uniform_scores(n: int, modes: int = 1000) -> tuple[float, float]:
  """Expected modes covered and KL of n samples from a perfect (uniform)
  generator: 1000 (1 - (1 - 1/1000)^n), and 1000 E[(X/n) log(1000 X/n)] with
  X ~ Binomial(n, 1/1000), the plug-in KL's bias (~999 / 2n for large n)."""
  import scipy.stats
  covered = modes * (1.0 - (1.0 - 1.0 / modes) ** n)
  x = np.arange(1, n + 1)
  pmf = scipy.stats.binom.pmf(x, n, 1.0 / modes)
  kl = modes * float(np.sum(pmf * (x / n) * np.log(modes * x / n)))
  return covered, kl


def markdown(runs: list[dict], real: dict | None, settings: dict,
             command: str) -> str:
  minutes = {r["method"]: r["run_minutes"] for r in runs}
  total = sum(minutes.values())
  per = ", ".join(f"{m} {v:.1f}" for m, v in minutes.items())
  lines = [
      "# Stacked digits: PacGAN's Table 2 reproduced (and WGAN-GP)", "",
      "Produced by `experiments/stacked_digits.py`; mean ± standard error "
      "over seeds, each seed a separate run trained in one program with "
      "`config.train.num_seeds`. Published: PacGAN Table 2 (stacked MNIST, "
      "mean ± standard error) and VEEGAN Table 2's DCGAN (no error bars); "
      "WGAN-GP has no published stacked-MNIST number in either.", "",
      f"Command: `{command}`; training time {total:.1f} min ({per}) on "
      f"{settings['device']}.", "",
      f"## {settings['dataset']} (1000 modes)", ""]
  lines += table(runs, real, settings) + [""]
  lines += ["Per seed:", ""] + per_seed_table(runs) + [""]
  lines += ["![comparison](comparison.png)", "",
            "![samples: a row per seed](samples.png)", ""]
  lines += ["## What differs from the published protocol", ""]
  lines += [f"- {line}" for line in protocol_changes(settings)]
  return "\n".join(lines) + "\n"


# -- pictures -----------------------------------------------------------------

def samples_png(runs: list[dict], value_range, path: str,
                real: np.ndarray | None = None, per_row: int = 16) -> None:
  """A grid per method, a row of final samples per seed (and a row of real
  stacks first)."""
  from gen_jax import plots
  images, labels = [], []
  if real is not None:
    images.append(plots.image_grid(real[:per_row], value_range,
                                   columns=per_row, scale=3))
    labels.append("real held-out stacks")
  for method, group in by_method(runs).items():
    rows = np.concatenate([load_samples(r)[:per_row] for r in group])
    images.append(plots.image_grid(rows, value_range, columns=per_row,
                                   scale=3))
    labels.append(f"{method}: seeds {', '.join(str(r['seed']) for r in group)}"
                  " (a row each)")
  common.sample_sheet(images, labels, path)


def comparison_png(runs: list[dict], real: dict | None, path: str) -> None:
  """Modes and KL, ours (filled) beside published (open); modes over steps."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  groups = by_method(runs)
  methods = list(groups)
  x = np.arange(len(methods))
  fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
  for ax, metric, title in ((axes[0], "modes", "modes of 1000"),
                            (axes[1], "kl", "KL to uniform")):
    ours = [summary(groups[m], metric) for m in methods]
    ax.errorbar(x - 0.1, [o[0] for o in ours], yerr=[o[1] for o in ours],
                fmt="o", color="tab:orange", label="ours")
    pub = [j for j, m in enumerate(methods) if m in PUBLISHED]
    if pub:
      ax.errorbar(x[pub] + 0.1, [PUBLISHED[methods[j]][metric][0] for j in pub],
                  yerr=[PUBLISHED[methods[j]][metric][1] for j in pub],
                  fmt="o", mfc="none", color="black",
                  label="PacGAN Table 2 (stacked MNIST)")
    if real is not None:
      ax.axhline(real[metric], color="gray", lw=0.7, ls="--",
                 label="real held-out stacks")
    ax.set_xticks(x, methods)
    ax.set_title(title)
    ax.legend(fontsize=7)
  ax = axes[2]
  for m in methods:
    steps = [e["step"] for e in groups[m][0]["history"]]
    modes = np.array([[e["modes"] for e in r["history"]] for r in groups[m]])
    ax.errorbar(steps, modes.mean(0), yerr=modes.std(0), marker="o", label=m,
                capsize=2)
  ax.set_xlabel("generator step")
  ax.set_title("modes over training (mean, std over seeds)")
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


# -- entry point --------------------------------------------------------------

def parse_args(argv):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--dataset", default="stacked_digits", choices=DATASETS)
  p.add_argument("--methods", default=",".join(METHODS),
                 help=f"comma-separated subset of {','.join(METHODS)}")
  p.add_argument("--seeds", type=int, default=3)
  p.add_argument("--steps", type=int, default=1200,
                 help="generator steps per run")
  p.add_argument("--width", type=int, default=32,
                 help="DCGAN generator and critic base width")
  p.add_argument("--samples", type=int, default=10_000,
                 help="evaluation samples per seed (modes and KL depend on it: "
                      "10,000 uniform samples cover 999.95 of 1000 modes on "
                      "average)")
  p.add_argument("--evals", type=int, default=3,
                 help="evaluations per run (the last at the end)")
  p.add_argument("--workdir", default=os.path.join(common.REPO, "runs",
                                                   "stacked_digits"))
  p.add_argument("--out", default=os.path.join(common.RESULTS,
                                               "stacked_digits"))
  p.add_argument("--quick", action="store_true",
                 help="a few steps of a tiny model (checks the script); "
                      "writes into WORKDIR_quick/results")
  args = p.parse_args(argv)
  methods = [m for m in args.methods.split(",") if m]
  unknown = [m for m in methods if m not in METHODS]
  if unknown or not methods:
    p.error(f"--methods: {','.join(unknown) or 'empty'} not among "
            f"{','.join(METHODS)}")
  args.methods = methods
  for flag in ("seeds", "steps", "width", "samples", "evals"):
    if getattr(args, flag) <= 0:
      p.error(f"--{flag} must be positive")
  if args.quick:
    args.seeds, args.steps, args.width = 2, 4, 8
    args.samples, args.evals = 200, 2
    args.workdir += "_quick"
    args.out = os.path.join(args.workdir, "results")
  return args


def command(args) -> str:
  """The command line that reproduces this run."""
  if args.quick:
    flags = ["--quick"]
    if args.dataset != DATASETS[0]:
      flags.append(f"--dataset={args.dataset}")
    if tuple(args.methods) != METHODS:
      flags.append(f"--methods={','.join(args.methods)}")
  else:
    flags = [f"--dataset={args.dataset}",
             f"--methods={','.join(args.methods)}", f"--seeds={args.seeds}",
             f"--steps={args.steps}", f"--width={args.width}",
             f"--samples={args.samples}", f"--evals={args.evals}"]
  return "PYTHONPATH=. python experiments/stacked_digits.py " + " ".join(flags)


def main(argv=None) -> None:
  args = parse_args(argv)
  try:
    run_all(args)
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(e.exit_code)


def run_all(args) -> None:
  import jax
  configs = {m: method_config(m, args) for m in args.methods}
  dataset = check_dataset(next(iter(configs.values())))
  runs = []
  for method, c in configs.items():
    result = common.run(run_name(method, args), c, args.workdir)
    runs += entries(method, args.dataset, result)
  real_images = held_out(dataset, args.samples)
  real = real_reference(dataset, real_images)
  settings = {"dataset": args.dataset, "steps": args.steps,
              "seeds": args.seeds, "width": args.width,
              "samples": args.samples,
              "device": f"{jax.devices()[0].device_kind} "
                        f"({os.cpu_count()} cores)"}
  write_results(runs, real, settings, command(args), args.out,
                dataset.info.value_range, real_images)


def write_results(runs: list[dict], real: dict | None, settings: dict,
                  cmd: str, out: str, value_range,
                  real_images: np.ndarray | None = None) -> str:
  """results.json, results.md, samples.png and comparison.png in `out`;
  prints the table and returns the markdown."""
  os.makedirs(out, exist_ok=True)
  common.write_atomic(os.path.join(out, "results.json"), json.dumps(
      {"command": cmd, "settings": settings, "real": real, "runs": runs},
      indent=1))
  text = markdown(runs, real, settings, cmd)
  common.write_atomic(os.path.join(out, "results.md"), text)
  samples_png(runs, value_range, os.path.join(out, "samples.png"),
              real_images)
  comparison_png(runs, real, os.path.join(out, "comparison.png"))
  print("\n".join(table(runs, real, settings)))
  print(f"wrote {out}", flush=True)
  return text


if __name__ == "__main__":
  main()
