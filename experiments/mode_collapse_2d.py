r"""Mode collapse on 2D mixtures: PacGAN's Table 1 reproduced, side by side.

  PYTHONPATH=. python experiments/mode_collapse_2d.py          # the table
  PYTHONPATH=. python experiments/mode_collapse_2d.py --quick  # a smoke run

PacGAN's protocol (ring of 8 and grid of 25 Gaussians, 100k training points;
G 4 x 400 BN-ReLU on 2-d Gaussian noise; D 3 maxout layers of 200 units x 5
pieces; weights N(0, 0.02); Adam, beta1 0.8; batch 100 packs), with a shorter
schedule (`--steps`, `--lr`): methods GAN, PacGAN2/3/4, WGAN-GP and an
unrolled GAN, `--trials` seeds each, all seeds of a method in one program
(`config.train.num_seeds`). Every run goes through the one training loop
(`gen_jax.train.train_and_evaluate`) in `--workdir/DATASET_METHOD`, which is
reused if finished (delete it to retrain).

Writes to `--out`: `results.json` (every run: method, dataset, seed, samples
file, final metrics and their history over the schedule), `results.md` (ours
and the published numbers, mean +- standard error, with where and why they
differ), `samples/DATASET_METHOD_seedS.npy` (each run's final 2,500 samples)
and `scatter.png` (all of them).
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

from gen_jax import schedules  # noqa: E402
from gen_jax.errors import UserError  # noqa: E402

# PacGAN Table 1 (10 trials, mean +- standard error): modes, %HQ, reverse KL.
PACGAN = {
    "ring": {"GAN": ((6.3, 0.5), (98.2, 0.2), (0.45, 0.09)),
             "PacGAN2": ((7.9, 0.1), (95.6, 2.0), (0.07, 0.03)),
             "PacGAN3": ((7.8, 0.1), (97.7, 0.3), (0.10, 0.02)),
             "PacGAN4": ((7.8, 0.1), (95.9, 1.4), (0.07, 0.02))},
    "grid": {"GAN": ((17.3, 0.8), (94.8, 0.7), (0.70, 0.07)),
             "PacGAN2": ((23.8, 0.7), (91.3, 0.8), (0.13, 0.04)),
             "PacGAN3": ((24.6, 0.4), (94.2, 0.4), (0.06, 0.02)),
             "PacGAN4": ((24.8, 0.2), (93.6, 0.6), (0.04, 0.01))},
}
# VEEGAN Table 1 (5 runs, no error bars; modes, %HQ), VEEGAN's own networks:
# for orientation only (its plain GAN finds 1 ring mode, PacGAN's 6.3).
VEEGAN = {"ring": {"GAN": (1.0, 99.3), "Unrolled5": (7.6, 35.6)},
          "grid": {"GAN": (3.3, 0.5), "Unrolled5": (23.6, 16.0)}}

METRICS = (("eval/modes", "modes", 1), ("eval/hq", "%HQ", 1),
           ("eval/reverse_kl_hq", "reverse KL", 2))
NUM_MODES = {"ring": 8, "grid": 25}


def methods(unroll_steps: int) -> dict[str, dict]:
  """Method name -> config overrides (dotted paths)."""
  out = {"GAN": {}}
  for m in (2, 3, 4):
    out[f"PacGAN{m}"] = {"gan.pack": m}
  # WGAN-GP's toy-data settings (its released code): lambda 0.1, 5 critic
  # steps, Adam beta1 0.5, beta2 0.9; the same networks as the others.
  out["WGAN-GP"] = {"gan.loss": "wasserstein", "gan.penalty": "wgan_gp",
                    "gan.penalty_weight": 0.1, "gan.n_critic": 5,
                    "optim.g_b1": 0.5, "optim.d_b1": 0.5,
                    "optim.g_b2": 0.9, "optim.d_b2": 0.9}
  # The unrolled GAN on its own paper's 2D networks and settings (Metz et
  # al. 2017, appendix: G 2 x 128 ReLU on 256-d noise, D 1 x 128, batch 512,
  # Adam beta1 0.5), which VEEGAN's numbers for it also use; unrolling
  # PacGAN's networks costs ~10x a GAN step.
  out[f"Unrolled{unroll_steps}"] = {
      "gan.unroll_steps": unroll_steps, "model.noise_dim": 256,
      "model.mlp.g_hidden": (128, 128), "model.mlp.g_batch_norm": False,
      "model.mlp.d_hidden": (128,), "model.mlp.d_maxout_pieces": 0,
      "data.batch_size": 512, "optim.g_b1": 0.5, "optim.d_b1": 0.5}
  return out


def config(dataset: str, overrides: dict, args):
  c = common.load_config("gan_2d", dataset)
  # PacGAN's batch is 100 *packs*: pack m draws 100 m real and fake points.
  c.data.batch_size = 100 * overrides.get("gan.pack", 1)
  common.override(c, overrides)
  c.optim.g_lr = c.optim.d_lr = args.lr
  c.optim.decay = args.decay
  # The schedule is in epochs, as PacGAN's: every method sees the same
  # number of batches, so WGAN-GP's 5 critic steps make 1/5 of the
  # generator steps.
  steps = max(1, args.steps // c.gan.n_critic)
  return common.finish(c, seeds=args.trials, steps=steps,
                       evals=min(args.evals, steps), eval_samples=2500)


def collect(results: dict, out: str) -> list[dict]:
  """One record per (dataset, method, seed); copies its final samples."""
  os.makedirs(os.path.join(out, "samples"), exist_ok=True)
  runs = []
  for dataset, by_method in results.items():
    for method, r in by_method.items():
      samples = np.load(common.samples_file(r))
      for i, seed in enumerate(r["seeds"]):
        rel = os.path.join("samples", f"{dataset}_{method}_seed{seed}.npy")
        np.save(os.path.join(out, rel), samples[i].astype(np.float32))
        final = r["evals"][-1]
        runs.append({
            "method": method, "dataset": dataset, "seed": seed,
            "samples": rel,
            "program_minutes": r["minutes"],  # all seeds of this method
            "metrics": {k[5:]: v[i] for k, v in final.items()
                        if k.startswith("eval/")},
            "history": [{"step": e["step"],
                         **{k[5:]: v[i] for k, v in e.items()
                            if k.startswith("eval/")}}
                        for e in r["evals"]]})
  return runs


def per_seed(runs: list[dict], dataset: str, method: str, metric: str,
             step: int | None = None) -> list[float]:
  """The metric of every seed of (dataset, method), finally or at `step`."""
  out = []
  for r in runs:
    if r["dataset"] == dataset and r["method"] == method:
      if step is None:
        out.append(r["metrics"][metric])
      else:
        out += [h[metric] for h in r["history"] if h["step"] == step]
  return out


def why(ours_history: list[tuple[int, float, float]],
        published: float) -> str:
  """Why ours falls outside the published error bar: the schedule if the
  gap shrank over our evaluations, else not the schedule by itself."""
  (s0, first, _), (s1, last, _) = ours_history[0], ours_history[-1]
  if (first - published) * (last - published) < 0:
    return (f"not the schedule: ours went past it ({first:.3g} at step {s0}, "
            f"{last:.3g} at {s1})")
  if len(ours_history) > 1 and abs(last - published) < abs(first - published):
    return (f"schedule: moving towards it ({first:.3g} at step {s0}, "
            f"{last:.3g} at {s1})")
  return (f"not the schedule alone ({first:.3g} at step {s0}, {last:.3g} at "
          f"{s1}): protocol differences or a finding")


def table(runs: list[dict], dataset: str, names: list[str]) -> list[str]:
  lines = [f"### {dataset.capitalize()} ({NUM_MODES[dataset]} modes)", "",
           "| method | modes | %HQ | reverse KL | PacGAN Table 1 "
           "(modes / %HQ / reverse KL) | outside PacGAN's error bars: why |",
           "|---|---|---|---|---|---|"]
  for method in names:
    ours, notes = [], []
    for i, (key, label, digits) in enumerate(METRICS):
      metric = key[5:]
      values = per_seed(runs, dataset, method, metric)
      defined = [v for v in values if np.isfinite(v)]
      if not defined:  # a KL over no high-quality samples
        ours.append("undefined (no HQ samples)")
        continue
      m = common.mean_se(defined)
      ours.append(common.fmt(*m, digits) + (
          f" ({len(values) - len(defined)} seeds without HQ samples)"
          if len(defined) < len(values) else ""))
      pub = PACGAN[dataset].get(method)
      if pub and common.outside(m, pub[i]):
        steps = sorted({h["step"] for r in runs for h in r["history"]
                        if r["dataset"] == dataset and r["method"] == method})
        finite = [[v for v in per_seed(runs, dataset, method, metric, s)
                   if np.isfinite(v)] for s in steps]
        history = [(s, *common.mean_se(v)) for s, v in zip(steps, finite)
                   if v]
        notes.append(f"{label}: {why(history, pub[i][0])}")
    pub = PACGAN[dataset].get(method)
    published = (" / ".join(common.fmt(*p, d) for p, (_, _, d)
                            in zip(pub, METRICS)) if pub else "")
    if method in VEEGAN[dataset]:
      v = VEEGAN[dataset][method]
      published += ("; " if published else "") + \
          f"VEEGAN Table 1: {v[0]:g} / {v[1]:g} (its networks)"
    lines.append(f"| {method} | {' | '.join(ours)} | {published or '-'} | "
                 f"{'; '.join(notes) or '-'} |")
  return lines


def schedule_table(runs: list[dict], dataset: str,
                   names: list[str]) -> list[str]:
  """Modes and %HQ (mean +- se) at every evaluation: the schedule's effect.
  Columns are fractions of the schedule (WGAN-GP's steps are fewer)."""
  evals = max(len(r["history"]) for r in runs)
  lines = [f"| {dataset}: method | " + " | ".join(
      f"{i + 1}/{evals}" for i in range(evals)) + " |",
           "|---" * (evals + 1) + "|"]
  for method in names:
    cells = []
    for i in range(evals):
      steps = [r["history"][i]["step"] for r in runs
               if r["dataset"] == dataset and r["method"] == method
               and len(r["history"]) == evals]
      if not steps:
        cells.append("-")
        continue
      modes = common.mean_se(per_seed(runs, dataset, method, "modes",
                                      steps[0]))
      hq = common.mean_se(per_seed(runs, dataset, method, "hq", steps[0]))
      cells.append(f"{common.fmt(*modes, 1)} / {common.fmt(*hq, 1)}")
    lines.append(f"| {method} | " + " | ".join(cells) + " |")
  return lines


def protocol_changes(args) -> list[str]:
  epochs = args.steps * 100 / 100_000
  return [
      f"Schedule: {args.steps} generator steps of 100 packs ({epochs:g} "
      "epochs of the 100k points), learning rate "
      f"{args.lr:g}; PacGAN: 400 epochs (400,000 steps) at 1e-4. The full "
      "schedule is out of reach of a 2-core CPU in 30 minutes (each "
      "PacGAN-size step is ~1 GFLOP; see BENCHMARKS.md); the schedule "
      "table shows how the numbers move with training length.",
      "Updates alternate (a critic step, then a generator step against the "
      "updated critic); PacGAN's ALI-based code updates both players at "
      "once from one forward pass.",
      "Packing: each step draws 100 m real points from a shuffled stream "
      "and 100 m fakes, grouped in consecutive m-tuples; PacGAN draws its "
      "packs from 100k pre-packed tuples. The generator's batch norm sees "
      "all 100 m fakes of a step at once (PacGAN: m batches of 100).",
      "Metrics as PacGAN's released code: nearest mode, high quality within "
      "3 standard deviations of it, 2,500 samples of the final generator; "
      "its histogram counts high-quality samples only, so 'reverse KL' here "
      "is over high-quality samples too (results.json also has "
      "`reverse_kl`, over all samples).",
      "WGAN-GP: Wasserstein loss with lambda 0.1, 5 critic steps per "
      "generator step, Adam beta1 0.5, beta2 0.9 (WGAN-GP's toy-data code) on "
      "the same networks, for the same number of epochs (so 1/5 of the "
      "generator steps); no published number under PacGAN's protocol.",
      f"Unrolled GAN ({args.unroll_steps} steps): the generator minimises "
      "Metz et al.'s surrogate, the value function at the critic after its "
      f"own {args.unroll_steps} Adam steps on the same batch, differentiated "
      "through. It runs on its own paper's 2D networks (G 2 x 128 ReLU on "
      "256-d noise, D 1 x 128 LeakyReLU, batch 512, Adam beta1 0.5), not "
      "PacGAN's (unrolling those costs ~10x a GAN step). Its only published "
      "2D numbers (VEEGAN Table 1) use VEEGAN's setup: orientation, not "
      "comparison.",
  ]


def scatter_png(runs: list[dict], out: str, path: str) -> None:
  """One panel per run: rows (dataset, method), columns seeds."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  from gen_jax import data as data_lib
  rows = sorted({(r["dataset"], r["method"]) for r in runs},
                key=lambda dm: [(r["dataset"], r["method"])
                                for r in runs].index(dm))
  cols = max(sum(1 for r in runs if (r["dataset"], r["method"]) == row)
             for row in rows)
  fig, axes = plt.subplots(len(rows), cols, squeeze=False,
                           figsize=(1.25 * cols, 1.35 * len(rows)))
  modes = {}
  for ax in axes.ravel():
    ax.set_axis_off()
  for r in runs:
    row = rows.index((r["dataset"], r["method"]))
    col = sum(1 for q in runs[:runs.index(r)]
              if (q["dataset"], q["method"]) == (r["dataset"], r["method"]))
    if r["dataset"] not in modes:
      c = common.load_config("gan_2d", r["dataset"])
      modes[r["dataset"]] = data_lib.get_dataset(c.data).info.extras["modes"]
    ax = axes[row, col]
    x = np.load(os.path.join(out, r["samples"]))
    m = np.asarray(modes[r["dataset"]])
    ax.scatter(m[:, 0], m[:, 1], s=6, c="tab:red", marker="x", lw=0.6)
    ax.scatter(x[:, 0], x[:, 1], s=0.3, c="black", alpha=0.4, lw=0)
    lim = 1.5 if r["dataset"] == "ring" else 5.5
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_axis_on()
    ax.set_xticks([])
    ax.set_yticks([])
    met = r["metrics"]
    ax.set_title(f"{met['modes']:.0f} modes, {met['hq']:.0f}% HQ",
                 fontsize=6, pad=2)
    if col == 0:
      ax.set_ylabel(f"{r['dataset']}\n{r['method']}", fontsize=7)
  fig.tight_layout(pad=0.3)
  fig.savefig(path, dpi=90)
  plt.close(fig)


def command_line(args) -> str:
  if args.quick:
    return "PYTHONPATH=. python experiments/mode_collapse_2d.py --quick"
  return ("PYTHONPATH=. python experiments/mode_collapse_2d.py "
          f"--trials={args.trials} --steps={args.steps} --lr={args.lr:g} "
          f"--decay={args.decay} "
          f"--evals={args.evals} --unroll_steps={args.unroll_steps} "
          f"--datasets={args.datasets} --methods={args.methods}")


def write(results: dict, args, out: str) -> list[dict]:
  runs = collect(results, out)
  names = list(next(iter(results.values())))
  train_minutes = sum(r["minutes"] for by in results.values()
                      for r in by.values())
  with_header = {"command": command_line(args), "minutes": train_minutes,
                 "steps": args.steps,
                 "lr": args.lr, "trials": args.trials,
                 "protocol_changes": protocol_changes(args), "runs": runs}
  common.write_atomic(os.path.join(out, "results.json"),
                      json.dumps(with_header, indent=1))
  lines = ["# Mode collapse on 2D mixtures: PacGAN's Table 1", "",
           "Produced by `experiments/mode_collapse_2d.py`; every number is "
           f"the mean ± standard error over {args.trials} seeds, trained in "
           "one program per method (`config.train.num_seeds`).", "",
           f"Command: `{command_line(args)}`. Its runs took "
           f"{train_minutes:.1f} min in all on this 2-core CPU (each run's "
           "compilation, training and evaluations).", "",
           "A cell is flagged when our mean ± se and PacGAN's do not "
           "overlap; the reason says whether our number was still moving "
           "towards theirs over the schedule.", ""]
  for dataset in results:
    lines += table(runs, dataset, names) + [""]
  lines += ["## The schedule's effect (modes / %HQ at each evaluation)", ""]
  for dataset in results:
    lines += schedule_table(runs, dataset, names) + [""]
  lines += ["![samples](scatter.png)", "",
            "## What differs from PacGAN's protocol", ""]
  lines += [f"- {line}" for line in protocol_changes(args)]
  text = "\n".join(lines) + "\n"
  common.write_atomic(os.path.join(out, "results.md"), text)
  scatter_png(runs, out, os.path.join(out, "scatter.png"))
  return runs


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--trials", type=int, default=10)
  p.add_argument("--steps", type=int, default=1400)
  p.add_argument("--lr", type=float, default=1e-3)
  p.add_argument("--decay", default="linear",
                 help="learning-rate decay to 0 over the schedule: constant, "
                 "linear or cosine")
  p.add_argument("--evals", type=int, default=4,
                 help="evaluations over the schedule (the last at the end)")
  p.add_argument("--unroll_steps", type=int, default=5)
  p.add_argument("--datasets", default="ring,grid")
  p.add_argument("--methods", default="GAN,PacGAN2,PacGAN3,PacGAN4,WGAN-GP,"
                 "Unrolled",
                 help="any of GAN, PacGAN2, PacGAN3, PacGAN4, WGAN-GP, "
                 "Unrolled")
  p.add_argument("--workdir", default=os.path.join(common.REPO, "runs",
                                                   "mode_collapse_2d"))
  p.add_argument("--out", default=os.path.join(common.RESULTS,
                                               "mode_collapse_2d"))
  p.add_argument("--quick", action="store_true",
                 help="2 trials of 100 steps (checks the script)")
  args = p.parse_args()
  if args.quick:
    args.trials, args.steps, args.evals = 2, 100, 2
    args.workdir += "_quick"
    args.out = os.path.join(args.workdir, "results")
  available = methods(args.unroll_steps)
  alias = {"Unrolled": f"Unrolled{args.unroll_steps}"}
  chosen = [alias.get(m, m) for m in args.methods.split(",") if m]
  datasets = [d for d in args.datasets.split(",") if d]
  for m in chosen:
    if m not in available:
      p.error(f"--methods: unknown {m!r}; choose from "
              f"{', '.join(list(available)[:-1])}, Unrolled")
  for d in datasets:
    if d not in NUM_MODES:
      p.error(f"--datasets: unknown {d!r}; choose from ring, grid")
  for flag in ("trials", "steps", "evals", "unroll_steps"):
    if getattr(args, flag) < 1:
      p.error(f"--{flag} must be at least 1")
  if args.lr <= 0:
    p.error("--lr must be positive")
  if args.decay not in schedules.DECAYS:
    p.error(f"--decay: unknown {args.decay!r}; choose from "
            f"{', '.join(schedules.DECAYS)}")
  try:
    results = {d: {m: common.run(f"{d}_{m}", config(d, available[m], args),
                                 args.workdir) for m in chosen}
               for d in datasets}
  except UserError as e:  # bad data or config: one line, no traceback
    print(f"error: {e}", file=sys.stderr)
    sys.exit(e.exit_code)
  os.makedirs(args.out, exist_ok=True)
  write(results, args, args.out)
  with open(os.path.join(args.out, "results.md")) as f:
    print(f.read())
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
