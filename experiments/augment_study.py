r"""Augmentation on little data: the DCGAN on a few hundred digits with no
augmentation, DiffAugment, and ADA (Zhao et al. 2020; Karras et al. 2020).

  PYTHONPATH=. python experiments/augment_study.py          # ~20 min here
  PYTHONPATH=. python experiments/augment_study.py --quick  # a smoke run

The same GAN (configs/dcgan.py at width `--width`) trains on the first
`--train_examples` digits of the training split (`digits:N`; the held-out
297 digits, the FID reference, are unchanged), `--seeds` seeds in one
program per method, through the one training loop:

- `none`: no augmentation;
- `DiffAugment`: `color,translation,cutout` on every critic input, real and
  fake, p = 1;
- `ADA`: the same transforms with ADA's adaptive p (target r_t = 0.6, from
  p = 0); `--ada_kimg` (default 10, ADA's 500 is for 100k-image runs) sets
  how fast p moves, so that it can reach useful values in this budget;
- with `--reference`, `none` on the whole training split (1,500 digits), to
  see what the small split costs.

The critic's overfitting signal is its mean logit on the real training
batches against that on the fakes (`d_real`, `d_fake` in the last logged
window): an overfitting critic separates them widely; for ADA its r_t and
p as well. Running the same command again reuses finished runs
(`--workdir/NAME`, NAME holding the flags).

Writes to `--out`: `results.json` (every seed: its evaluation history and
final training metrics), `results.md` (per method, domain FID mean +-
standard error at the end and at its best evaluation, the critic's logits)
and `fid.png` (domain FID over the steps per method, mean and one standard
error).
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

POLICY = "color,translation,cutout"
METHODS = ("none", "DiffAugment", "ADA")
REFERENCE = "none, all data"
METRIC = "eval/fid"
TRAIN_KEYS = ("d_real", "d_fake", "ada_p", "ada_rt")


def method_overrides(method: str, args) -> dict:
  if method in ("none", REFERENCE):
    return {}
  if method == "DiffAugment":
    return {"gan.augment": POLICY, "gan.augment_p": 1.0}
  if method == "ADA":
    return {"gan.augment": POLICY, "gan.augment_p": 0.0,
            "gan.ada_target": 0.6, "gan.ada_kimg": args.ada_kimg}
  raise ValueError(f"method {method!r} is not one of {METHODS}")


def method_config(method: str, args):
  dataset = "digits" if method == REFERENCE else f"digits:{args.train_examples}"
  c = common.load_config("dcgan", dataset)
  c.model.dcgan.g_width = c.model.dcgan.d_width = args.width
  common.override(c, method_overrides(method, args))
  c.evals = ("domain",)
  return common.finish(c, seeds=args.seeds, steps=args.steps,
                       evals=args.evals, eval_samples=args.samples)


def run_name(method: str, args) -> str:
  """Names the settings too, so that a changed flag never reuses a run."""
  data = "all" if method == REFERENCE else args.train_examples
  tag = {"none": "none", "DiffAugment": "diffaug", "ADA": f"ada{args.ada_kimg:g}",
         REFERENCE: "none"}[method]
  return (f"{tag}_n{data}_w{args.width}_steps{args.steps}_seeds{args.seeds}_"
          f"s{args.samples}_evals{args.evals}")


def last_train_metrics(metrics_file: str, seeds: list[int]) -> dict:
  """{key: [per seed]} of TRAIN_KEYS in the last training record."""
  last = None
  with open(metrics_file) as f:
    for line in f:
      record = json.loads(line)
      if "steps_per_sec" in record:
        last = record
  out = {}
  for k in TRAIN_KEYS:
    if last is None or k not in last:
      continue
    out[k] = [last.get(f"{k}/seed_{s}", last[k]) for s in seeds]
  return out


def entries(method: str, result: dict) -> list[dict]:
  """One results.json entry per seed of a `common.run` result."""
  seeds = result["seeds"]
  train = last_train_metrics(os.path.join(result["workdir"], "metrics.jsonl"),
                             seeds)
  out = []
  for i, seed in enumerate(seeds):
    out.append({
        "method": method, "seed": seed,
        "history": [{"step": e["step"], "fid": e[METRIC][i]}
                    for e in result["evals"] if METRIC in e],
        "train": {k: v[i] for k, v in train.items()},
        "run_minutes": result["minutes"]})
  return out


# -- the report (pure: tested in tests/test_augment_study.py) -----------------

def summarize(runs: list[dict]) -> list[dict]:
  """Per method (in first-seen order): seeds, final and best FID, the
  critic's final logits, each as (mean, standard error)."""
  by: dict[str, list[dict]] = {}
  for r in runs:
    by.setdefault(r["method"], []).append(r)
  rows = []
  for method, rs in by.items():
    row = {"method": method, "seeds": len(rs),
           "final": common.mean_se([r["history"][-1]["fid"] for r in rs]),
           "best": common.mean_se([min(h["fid"] for h in r["history"])
                                   for r in rs]),
           "minutes": max(r["run_minutes"] for r in rs)}
    for k in TRAIN_KEYS:
      if all(k in r["train"] for r in rs):
        row[k] = common.mean_se([r["train"][k] for r in rs])
    if "d_real" in row and "d_fake" in row:
      row["gap"] = common.mean_se([r["train"]["d_real"] - r["train"]["d_fake"]
                                   for r in rs])
    rows.append(row)
  return rows


def markdown(rows: list[dict], settings: dict) -> str:
  fmt = lambda ms, d=1: common.fmt(ms[0], ms[1], d)
  lines = [
      "# Augmentation on little data", "",
      f"DCGAN (width {settings['width']}) on the first "
      f"{settings['train_examples']} training digits, {settings['steps']} "
      f"steps of batch 64, {settings['seeds']} seeds per method; domain FID "
      f"of {settings['samples']} samples against the 297 held-out digits "
      "(lower is better), mean ± standard error over seeds. `gap`: the "
      "critic's mean logit on real training batches minus that on fakes, "
      "in the last logged window (large: the critic tells the training "
      "images apart; a sign of overfitting).", "",
      "| method | final FID | best FID | d_real | d_fake | gap | ADA p | "
      "ADA r_t | minutes |",
      "|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    cell = lambda k, d=2: fmt(r[k], d) if k in r else "-"
    lines.append(f"| {r['method']} | {fmt(r['final'])} | {fmt(r['best'])} | "
                 f"{cell('d_real')} | {cell('d_fake')} | {cell('gap')} | "
                 f"{cell('ada_p')} | {cell('ada_rt')} | {r['minutes']:.1f} |")
  return "\n".join(lines) + "\n"


def plot(runs: list[dict], path: str) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(6, 4))
  by: dict[str, list[dict]] = {}
  for r in runs:
    by.setdefault(r["method"], []).append(r)
  for method, rs in by.items():
    steps = [h["step"] for h in rs[0]["history"]]
    stats = [common.mean_se([r["history"][i]["fid"] for r in rs])
             for i in range(len(steps))]
    mean = np.array([s[0] for s in stats])
    se = np.array([s[1] for s in stats])
    ax.plot(steps, mean, marker="o", label=method)
    ax.fill_between(steps, mean - se, mean + se, alpha=0.2)
  ax.set_xlabel("step")
  ax.set_ylabel("domain FID (held-out digits)")
  ax.set_yscale("log")
  ax.legend()
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--train_examples", type=int, default=200)
  p.add_argument("--steps", type=int, default=1500)
  p.add_argument("--seeds", type=int, default=2)
  p.add_argument("--width", type=int, default=32)
  p.add_argument("--evals", type=int, default=3)
  p.add_argument("--samples", type=int, default=1000)
  p.add_argument("--ada_kimg", type=float, default=10.0)
  p.add_argument("--reference", action=argparse.BooleanOptionalAction,
                 default=True)
  p.add_argument("--quick", action="store_true",
                 help="a smoke run: 2 seeds, 40 steps, width 8")
  p.add_argument("--workdir", default=os.path.join(common.REPO, "runs",
                                                   "augment_study"))
  p.add_argument("--out", default=None)
  args = p.parse_args(argv)
  if args.quick:
    args.steps, args.seeds, args.width, args.evals, args.samples = (
        40, 2, 8, 2, 200)
    args.reference = False
  out = args.out or os.path.join(
      common.REPO, "experiments", "results",
      "augment_study_quick" if args.quick else "augment_study")
  os.makedirs(out, exist_ok=True)
  methods = list(METHODS) + ([REFERENCE] if args.reference else [])
  runs = []
  for method in methods:
    result = common.run(run_name(method, args), method_config(method, args),
                        args.workdir)
    runs += entries(method, result)
  settings = {k: getattr(args, k) for k in ("train_examples", "steps",
                                            "seeds", "width", "samples",
                                            "ada_kimg", "evals")}
  common.write_atomic(os.path.join(out, "results.json"), json.dumps(
      {"settings": settings, "runs": runs}, indent=1))
  common.write_atomic(os.path.join(out, "results.md"),
                      markdown(summarize(runs), settings))
  plot(runs, os.path.join(out, "fid.png"))
  print(open(os.path.join(out, "results.md")).read())


if __name__ == "__main__":
  main()
