r"""The loss study: every GAN loss under the same random search, as in Lucic
et al. 2018 ("Are GANs Created Equal?"), at the size this machine allows.

  PYTHONPATH=. python experiments/loss_study.py             # the study here
  PYTHONPATH=. python experiments/loss_study.py --quick     # a smoke run

Each loss (minimax, non-saturating, Wasserstein with weight clipping,
WGAN-GP, least squares, hinge, DRAGAN) gets its own sweep with the same
search space (configs/sweeps/loss_study.yaml: learning rates, betas,
n_critic, the penalty weight where there is a penalty, the seed) and the same
number of trials, on each dataset; one DCGAN architecture for all. The
sweeps run through the offline executor (`gen_jax.sweep`), one trial per
process, so running the same command again resumes: finished trials are
kept, a trial cut short resumes from its checkpoint. The per-loss sweep
files are written to WORKDIR/sweeps/; the same files run on W&B agents
(`wandb sweep FILE`) for the full-size study, e.g. `--datasets=cifar10
--steps=100000 --trials=100 --prepare_only` writes them without running.

A trial that fails or ends with a non-finite score counts as FID = inf: it
used its share of the budget and found nothing.

Writes to `--out`: `results.md` (per dataset and loss: trials, failures,
best and median FID with bootstrap standard errors, the best trial's
settings; Lucic et al.'s numbers beside), `results.json` (every trial),
`budget.png` (the best FID found after k trials, bootstrap mean and 95%
band; Lucic et al.'s Figure 4) and `scores.png` (the distribution of FIDs
per loss).
"""

import argparse
import copy
import json
import os
import sys

import numpy as np
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

from gen_jax import sweep as sweep_lib  # noqa: E402

BASE_SWEEP = os.path.join(common.REPO, "configs", "sweeps", "loss_study.yaml")
METRIC = "eval/fid"
DATASETS = ("digits", "stacked_digits")

# name -> the config fields fixed for that loss (the rest is searched).
VARIANTS = {
    "MM GAN": {"config.gan.loss": "minimax"},
    "NS GAN": {"config.gan.loss": "non_saturating"},
    "WGAN": {"config.gan.loss": "wasserstein", "config.gan.weight_clip": 0.01},
    "WGAN-GP": {"config.gan.loss": "wasserstein",
                "config.gan.penalty": "wgan_gp"},
    "LS GAN": {"config.gan.loss": "least_squares"},
    "hinge": {"config.gan.loss": "hinge"},
    "DRAGAN": {"config.gan.loss": "non_saturating",
               "config.gan.penalty": "dragan"},
}

# Lucic et al. 2018, best FID (Inception features, 10k vs 10k) mean +- std
# over their runs (../shared/reference/mode_collapse_tables.md). BEGAN is
# not among ours; hinge is not among theirs.
PUBLISHED = {"MM GAN": {"MNIST": "9.8±0.9", "CIFAR10": "72.7±3.6"},
             "NS GAN": {"MNIST": "6.8±0.5", "CIFAR10": "58.5±1.9"},
             "WGAN": {"MNIST": "6.7±0.4", "CIFAR10": "55.2±2.3"},
             "WGAN-GP": {"MNIST": "20.3±5.0", "CIFAR10": "55.8±0.9"},
             "LS GAN": {"MNIST": "7.8±0.6", "CIFAR10": "87.1±47.5"},
             "DRAGAN": {"MNIST": "7.6±0.4", "CIFAR10": "69.8±2.0"}}


def slug(variant: str) -> str:
  return variant.lower().replace(" ", "_").replace("-", "_")


def sweep_spec(base: dict, dataset: str, variant: str, args) -> dict:
  """The base search space with the variant's fields fixed."""
  spec = copy.deepcopy(base)
  fixed = VARIANTS[variant]
  spec["name"] = f"loss_study_{dataset}_{slug(variant)}"
  params = spec["parameters"]
  if "config.gan.penalty" not in fixed:
    del params["config.gan.penalty_weight"]  # nothing to weigh
  for name, value in fixed.items():
    params[name] = {"value": value}
  config = f"--config=configs/dcgan.py:{dataset}"
  command = [c for c in spec["command"] if not str(c).startswith("--config=")]
  at = command.index("${args}")
  spec["command"] = command[:at] + [config, *protocol_args(args)] + \
      command[at:]
  return spec


def protocol_args(args) -> list[str]:
  """What every trial shares: steps, width, evaluation at the end."""
  every = max(1, args.steps // 2)
  return [f"--config.train.num_steps={args.steps}",
          f"--config.model.dcgan.g_width={args.width}",
          f"--config.model.dcgan.d_width={args.width}",
          f"--config.train.eval_every={args.steps}",
          f"--config.train.checkpoint_every={every}",
          f"--config.train.log_every={every}",
          f"--config.train.num_eval_samples={args.samples}",
          "--config.wandb.mode=disabled"]


def write_sweeps(args) -> dict[tuple[str, str], str]:
  with open(BASE_SWEEP) as f:
    base = yaml.safe_load(f)
  os.makedirs(os.path.join(args.workdir, "sweeps"), exist_ok=True)
  files = {}
  for dataset in args.datasets:
    for variant in args.variants:
      path = os.path.join(args.workdir, "sweeps",
                          f"{dataset}_{slug(variant)}.yaml")
      text = yaml.safe_dump(sweep_spec(base, dataset, variant, args),
                            sort_keys=False)
      if not os.path.exists(path) or open(path).read() != text:
        common.write_atomic(path, text)
      files[dataset, variant] = path
  return files


def run_sweeps(files, args) -> None:
  """Rounds of `workers` trials per sweep, so that every loss has the same
  number of trials whenever the study is stopped."""
  for done in range(args.workers, args.trials + args.workers, args.workers):
    runs = min(done, args.trials)
    for (dataset, variant), path in files.items():
      print(f"== {dataset} / {variant}: trials up to {runs} of {args.trials}",
            flush=True)
      code = sweep_lib.main([path,
                             f"--workdir={sweep_dir(args, dataset, variant)}",
                             f"--max_runs={runs}", f"--workers={args.workers}"])
      if code == 130:
        raise KeyboardInterrupt
      # A failed trial (exit 1) is a result: it scores inf.


def reference_dir(args, dataset: str) -> str:
  return os.path.join(args.workdir, "runs", dataset, "reference")


def run_references(args) -> None:
  """For orientation, one trial per dataset with configs/dcgan.py's own
  hand-set optimiser (NS GAN, Adam 2e-4, beta1 0.5, n_critic 1) under the
  same protocol; a finished one is reused."""
  import subprocess
  for dataset in args.datasets:
    workdir = reference_dir(args, dataset)
    if os.path.exists(os.path.join(workdir, "summary.json")):
      continue
    print(f"== {dataset} / reference (configs/dcgan.py's settings)",
          flush=True)
    subprocess.run([sys.executable, "-m", "gen_jax.main",
                    f"--config=configs/dcgan.py:{dataset}",
                    *protocol_args(args), f"--workdir={workdir}"],
                   cwd=common.REPO, check=False)


def reference_score(args, dataset: str) -> float | None:
  path = os.path.join(reference_dir(args, dataset), "summary.json")
  if not os.path.exists(path):
    return None
  with open(path) as f:
    value = json.load(f).get(METRIC)
  return float(value) if isinstance(value, (int, float)) else None


def sweep_dir(args, dataset: str, variant: str) -> str:
  return os.path.join(args.workdir, "runs", dataset, slug(variant))


def collect(args) -> list[dict]:
  """Every trial of every sweep: dataset, variant, params, status, score."""
  rows = []
  for dataset in args.datasets:
    for variant in args.variants:
      state = os.path.join(sweep_dir(args, dataset, variant),
                           sweep_lib.STATE_FILE)
      if not os.path.exists(state):
        continue
      with open(state) as f:
        trials = json.load(f)["trials"]
      for t in trials:
        if t["status"] not in ("finished", "failed"):
          continue  # not run yet, or cut short: resumed by the next run
        score = t["summary"].get(METRIC)
        ok = (t["status"] == "finished" and isinstance(score, (int, float))
              and np.isfinite(score))
        rows.append({"dataset": dataset, "variant": variant,
                     "trial": t["name"], "status": t["status"],
                     "params": t["params"],
                     "fid": float(score) if ok else float("inf"),
                     "summary": {k: v for k, v in t["summary"].items()
                                 if k.startswith("eval/")}})
  return equal_budget(rows)


def equal_budget(rows: list[dict]) -> list[dict]:
  """Per dataset, the first n done trials of every loss, n the fewest any
  loss has: a study stopped mid-round still compares equal budgets."""
  out = []
  for dataset in dict.fromkeys(r["dataset"] for r in rows):
    mine = [r for r in rows if r["dataset"] == dataset]
    by_variant = {}
    for r in sorted(mine, key=lambda r: r["trial"]):
      by_variant.setdefault(r["variant"], []).append(r)
    n = min(len(v) for v in by_variant.values())
    out += [r for v in by_variant.values() for r in v[:n]]
  return out


def best_after(scores: np.ndarray, k: int, rng: np.random.Generator,
               draws: int) -> np.ndarray:
  """The best (lowest) score among k trials drawn with replacement, for
  `draws` bootstrap draws."""
  picks = rng.integers(0, len(scores), size=(draws, k))
  return scores[picks].min(axis=1)


def bootstrap_se(scores: np.ndarray, stat, rng, draws: int) -> float:
  """Standard error of `stat` over bootstrap resamples; nan if it is not
  finite (too many failed trials)."""
  picks = rng.integers(0, len(scores), size=(draws, len(scores)))
  values = np.array([stat(scores[p]) for p in picks])
  if not np.all(np.isfinite(values)):
    return float("nan")
  return float(np.std(values, ddof=1))


def summarise(rows: list[dict], args, draws: int = 2000) -> dict:
  """Per (dataset, variant): n, failures, best, median, their bootstrap SEs,
  the best trial, and the budget curve (k, mean, 2.5%, 97.5%)."""
  out = {}
  for dataset in args.datasets:
    for variant in args.variants:
      mine = [r for r in rows if r["dataset"] == dataset
              and r["variant"] == variant]
      if not mine:
        continue
      scores = np.array([r["fid"] for r in mine])
      rng = np.random.default_rng(0)
      curve = []
      for k in range(1, len(scores) + 1):
        b = best_after(scores, k, rng, draws)
        with np.errstate(invalid="ignore"):  # inf among the draws
          band = np.percentile(b, [2.5, 97.5])
        curve.append((k, float(np.mean(b)) if np.all(np.isfinite(b))
                      else float("inf"), *map(float, band)))
      best = min(mine, key=lambda r: r["fid"])
      out[dataset, variant] = {
          "n": len(scores), "failed": int(np.sum(~np.isfinite(scores))),
          "best": float(scores.min()),
          "best_se": bootstrap_se(scores, np.min, rng, draws),
          "median": float(np.median(scores)),
          "median_se": bootstrap_se(scores, np.median, rng, draws),
          "best_trial": best, "curve": curve}
  return out


def _num(v: float, se: float | None = None) -> str:
  if not np.isfinite(v):
    return "failed"
  return f"{v:.1f}" + ("" if se is None else
                       f"±{se:.1f}" if np.isfinite(se) else "±?")


def _settings(params: dict) -> str:
  short = {"config.optim.g_lr": "g_lr", "config.optim.d_lr": "d_lr",
           "config.gan.n_critic": "n_critic",
           "config.gan.penalty_weight": "λ"}
  return ", ".join(f"{s} {params[k]:.2g}" if isinstance(params[k], float)
                   else f"{s} {params[k]}"
                   for k, s in short.items() if k in params)


def markdown(summary: dict, args) -> str:
  lines = ["# The loss study", "",
           f"`{command(args)}`", "",
           "Lucic et al. 2018's protocol at this machine's size: every loss "
           f"gets the same random search ({args.trials} trials per loss and "
           "dataset, configs/sweeps/loss_study.yaml: learning rates and "
           "betas of G and D, n_critic in {1, 5}, the penalty weight where "
           "there is one, the seed), one DCGAN architecture for all "
           f"(width {args.width}, batch norm in both networks), "
           f"{args.steps} generator steps per trial, scored once at the end "
           f"by the domain FID of {args.samples} samples (features of a "
           "small digit classifier, not Inception: not comparable with "
           "Lucic et al.'s numbers in scale). A failed or non-finite trial "
           "scores inf. ± is a bootstrap standard error over the trials.",
           ""]
  for dataset in args.datasets:
    rows = [(v, summary[dataset, v]) for v in args.variants
            if (dataset, v) in summary]
    if not rows:
      continue
    published = "MNIST" if dataset == "digits" else None
    reference = reference_score(args, dataset)
    lines += [f"## {dataset}", ""]
    if reference is not None:
      lines += [f"For orientation: configs/dcgan.py's own settings (NS GAN, "
                f"Adam 2e-4, beta1 0.5, n_critic 1) under the same protocol "
                f"score {reference:.1f}.", ""]
    lines += ["| loss | trials | failed | best FID | median FID | best "
              "trial's settings |"
              + (" Lucic et al. best FID (MNIST, Inception) |"
                 if published else ""),
              "|---|---|---|---|---|---|" + ("---|" if published else "")]
    for v, s in sorted(rows, key=lambda r: r[1]["best"]):
      cells = [v, str(s["n"]), str(s["failed"]),
               _num(s["best"], s["best_se"]),
               _num(s["median"], s["median_se"]),
               _settings(s["best_trial"]["params"])]
      if published:
        cells.append(PUBLISHED.get(v, {}).get(published, "—"))
      lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
  lines += ["![best FID after k trials](budget.png)", "",
            "![FID per loss](scores.png)", ""]
  return "\n".join(lines)


def plots(summary: dict, rows: list[dict], args) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  datasets = [d for d in args.datasets
              if any((d, v) in summary for v in args.variants)]
  if not datasets:
    return
  colours = dict(zip(VARIANTS, plt.get_cmap("tab10").colors))
  fig, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4.2),
                           squeeze=False)
  for ax, dataset in zip(axes[0], datasets):
    finite = [r["fid"] for r in rows if r["dataset"] == dataset
              and np.isfinite(r["fid"])]
    top = np.percentile(finite, 90) * 1.1 if finite else 1.0
    for v in args.variants:
      if (dataset, v) not in summary:
        continue
      curve = np.array(summary[dataset, v]["curve"])
      k, mean, lo, hi = curve.T
      mean = np.where(np.isfinite(mean), mean, np.nan)
      hi = np.minimum(hi, top * 2)
      ax.plot(k, mean, label=v, color=colours[v])
      ax.fill_between(k, lo, hi, alpha=0.15, color=colours[v])
    ax.set(title=f"{dataset}: best FID after k trials", xlabel="budget "
           "(trials)", ylabel="domain FID (lower is better; log scale)",
           yscale="log", ylim=(None, top))
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(os.path.join(args.out, "budget.png"), dpi=110)
  plt.close(fig)

  fig, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4.2),
                           squeeze=False)
  for ax, dataset in zip(axes[0], datasets):
    names = [v for v in args.variants if (dataset, v) in summary]
    data = [[r["fid"] for r in rows if r["dataset"] == dataset
             and r["variant"] == v and np.isfinite(r["fid"])] for v in names]
    ax.boxplot([d if d else [np.nan] for d in data], showfliers=True)
    for i, (v, d) in enumerate(zip(names, data), start=1):
      ax.scatter(np.full(len(d), i) + np.random.default_rng(i).uniform(
          -0.12, 0.12, len(d)), d, s=10, color=colours[v], zorder=3)
      failed = summary[dataset, v]["failed"]
      if failed:
        ax.annotate(f"{failed} failed", (i, 0), xytext=(0, 4),
                    textcoords="offset points", ha="center", fontsize=7,
                    xycoords=("data", "axes fraction"))
    ax.set_xticks(range(1, len(names) + 1), names, rotation=30, fontsize=8)
    ax.set(title=f"{dataset}: FID of every trial",
           ylabel="domain FID (lower is better; log scale)", yscale="log")
  fig.tight_layout()
  fig.savefig(os.path.join(args.out, "scores.png"), dpi=110)
  plt.close(fig)


def write_results(rows: list[dict], args) -> dict:
  os.makedirs(args.out, exist_ok=True)
  summary = summarise(rows, args)
  common.write_atomic(os.path.join(args.out, "results.md"),
                      markdown(summary, args))
  common.write_atomic(os.path.join(args.out, "results.json"), json.dumps({
      "command": command(args), "trials": rows,
      "summary": [{"dataset": d, "variant": v,
                   **{k: s[k] for k in ("n", "failed", "best", "best_se",
                                        "median", "median_se", "curve")}}
                  for (d, v), s in summary.items()]}, indent=1))
  plots(summary, rows, args)
  return summary


def parse_args(argv):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--datasets", default=",".join(DATASETS),
                 help="comma-separated dataset names (configs/dcgan.py ARGs)")
  p.add_argument("--variants", default=",".join(slug(v) for v in VARIANTS),
                 help="comma-separated subset of "
                      + ",".join(slug(v) for v in VARIANTS))
  p.add_argument("--trials", type=int, default=8,
                 help="trials per loss and dataset (the same for every loss)")
  p.add_argument("--steps", type=int, default=800,
                 help="generator steps per trial")
  p.add_argument("--width", type=int, default=32,
                 help="DCGAN generator and critic base width")
  p.add_argument("--samples", type=int, default=1000,
                 help="samples scored per trial")
  p.add_argument("--workers", type=int, default=1,
                 help="trials run in parallel")
  p.add_argument("--workdir", default=os.path.join(common.REPO, "runs",
                                                   "loss_study"))
  p.add_argument("--out", default=os.path.join(common.RESULTS, "loss_study"))
  p.add_argument("--prepare_only", action="store_true",
                 help="write the sweep files (for W&B agents) and stop")
  p.add_argument("--report_only", action="store_true",
                 help="write the results from the finished trials so far")
  p.add_argument("--quick", action="store_true",
                 help="2 trials of 3 steps of a tiny model per loss (checks "
                      "the script); writes into WORKDIR_quick/results")
  args = p.parse_args(argv)
  by_slug = {slug(v): v for v in VARIANTS}
  names = [v for v in args.variants.split(",") if v]
  unknown = [v for v in names if v not in by_slug]
  if unknown or not names:
    p.error(f"--variants: {','.join(unknown) or 'empty'} not among "
            f"{','.join(by_slug)}")
  args.variants = [by_slug[v] for v in names]
  args.datasets = [d for d in args.datasets.split(",") if d]
  if not args.datasets:
    p.error("--datasets is empty")
  for flag in ("trials", "steps", "width", "samples", "workers"):
    if getattr(args, flag) <= 0:
      p.error(f"--{flag} must be positive")
  if args.quick:
    args.trials, args.steps, args.width, args.samples = 2, 3, 8, 100
    args.workdir += "_quick"
    args.out = os.path.join(args.workdir, "results")
  return args


def command(args) -> str:
  if args.quick:
    return "PYTHONPATH=. python experiments/loss_study.py --quick"
  return ("PYTHONPATH=. python experiments/loss_study.py "
          f"--datasets={','.join(args.datasets)} "
          f"--variants={','.join(slug(v) for v in args.variants)} "
          f"--trials={args.trials} --steps={args.steps} --width={args.width} "
          f"--samples={args.samples}")


def main(argv=None) -> int:
  args = parse_args(argv)
  try:
    files = write_sweeps(args)
    if args.prepare_only:
      print(f"sweep files: {os.path.join(args.workdir, 'sweeps')}")
      return 0
    if not args.report_only:
      run_references(args)
      run_sweeps(files, args)
  except sweep_lib.UserError as e:
    print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
    return e.exit_code
  except KeyboardInterrupt:
    print("interrupted: run the same command again to resume",
          file=sys.stderr)
    return 130
  write_results(collect(args), args)
  print(f"results: {os.path.join(args.out, 'results.md')}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
