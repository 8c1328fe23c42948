"""experiments/loss_study.py: the per-loss sweep files, the bootstrap
statistics against hand-computed values, collecting trials and the report.
(The executor that runs the trials is tested in test_sweep.py.)"""

import json
import math
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "experiments"))
import loss_study as ls  # noqa: E402

from gen_jax import sweep as sweep_lib  # noqa: E402


@pytest.fixture
def args(tmp_path):
  return ls.parse_args([f"--workdir={tmp_path / 'work'}",
                        f"--out={tmp_path / 'out'}", "--trials=4",
                        "--steps=10", "--datasets=digits"])


def test_every_loss_gets_the_same_search_with_its_own_fixed_fields(args):
  files = ls.write_sweeps(args)
  assert len(files) == len(ls.VARIANTS)
  specs = {v: sweep_lib.load(path, check=False).spec
           for (_, v), path in files.items()}
  searched = lambda spec: {k for k, p in spec["parameters"].items()
                           if "value" not in p}
  assert searched(specs["NS GAN"]) == searched(specs["MM GAN"])
  assert "config.gan.penalty_weight" not in searched(specs["NS GAN"])
  assert searched(specs["WGAN-GP"]) == (searched(specs["NS GAN"])
                                        | {"config.gan.penalty_weight"})
  assert specs["WGAN"]["parameters"]["config.gan.weight_clip"] == {
      "value": 0.01}
  assert specs["DRAGAN"]["parameters"]["config.gan.penalty"] == {
      "value": "dragan"}
  command = specs["hinge"]["command"]
  assert "--config=configs/dcgan.py:digits" in command
  assert "--config.train.num_steps=10" in command
  # Names differ, so each loss draws its own trials.
  assert len({s["name"] for s in specs.values()}) == len(specs)


def test_a_sweep_file_is_a_valid_sweep(args):
  # Every parameter value fits and validates (the executor's own check).
  files = ls.write_sweeps(args)
  sweep_lib.load(files["digits", "WGAN-GP"], check=True)


def test_best_after_k_is_the_expected_minimum():
  # Two scores, 5 and 1: the best of k draws is 5 only if every draw is 5.
  rng = np.random.default_rng(0)
  scores = np.array([5.0, 1.0])
  for k in (1, 2, 3):
    expected = 1.0 + 4.0 * 0.5 ** k
    got = ls.best_after(scores, k, rng, 40_000).mean()
    assert got == pytest.approx(expected, abs=0.05)


def test_bootstrap_se_of_the_median_and_of_failures():
  rng = np.random.default_rng(0)
  same = np.full(5, 7.0)
  assert ls.bootstrap_se(same, np.median, rng, 500) == 0.0
  # Bootstrap SE of the mean is close to the classical std / sqrt(n).
  x = np.random.default_rng(1).normal(size=200)
  se = ls.bootstrap_se(x, np.mean, rng, 2000)
  assert se == pytest.approx(x.std() / math.sqrt(len(x)), rel=0.1)
  with_failure = np.array([1.0, np.inf, 2.0])
  assert math.isnan(ls.bootstrap_se(with_failure, np.median, rng, 200))


def fake_sweep(args, variant, scores, statuses=None):
  directory = ls.sweep_dir(args, "digits", variant)
  os.makedirs(directory, exist_ok=True)
  statuses = statuses or ["finished"] * len(scores)
  trials = [{"name": f"t{i}", "params": {"config.optim.g_lr": 1e-4 * (i + 1),
                                         "config.gan.n_critic": 1},
             "status": st, "returncode": 0 if st == "finished" else 1,
             "summary": {} if s is None else {"eval/fid": s}}
            for i, (s, st) in enumerate(zip(scores, statuses))]
  with open(os.path.join(directory, sweep_lib.STATE_FILE), "w") as f:
    json.dump({"trials": trials}, f)


def test_report_counts_failures_and_skips_unfinished_trials(args):
  args.variants = ["NS GAN", "WGAN"]
  fake_sweep(args, "NS GAN", [30.0, 10.0, 20.0, float("nan")])
  fake_sweep(args, "WGAN", [50.0, None, 40.0, 45.0, None],
             ["finished", "failed", "finished", "finished", "running"])
  rows = ls.collect(args)
  ns = [r["fid"] for r in rows if r["variant"] == "NS GAN"]
  assert ns[:3] == [30.0, 10.0, 20.0] and math.isinf(ns[3])  # nan: failed
  wgan = [r for r in rows if r["variant"] == "WGAN"]
  assert [r["status"] for r in wgan] == [
      "finished", "failed", "finished", "finished"]  # not the running one
  summary = ls.write_results(rows, args)
  s = summary["digits", "NS GAN"]
  assert (s["n"], s["failed"], s["best"]) == (4, 1, 10.0)
  assert s["median"] == 25.0  # of 10, 20, 30, inf
  assert summary["digits", "WGAN"]["failed"] == 1
  # The budget curve falls (or stays) with k and ends at the best score.
  means = [m for _, m, _, _ in s["curve"]]
  assert all(a >= b for a, b in zip(means, means[1:]))
  text = open(os.path.join(args.out, "results.md")).read()
  (line,) = [l for l in text.splitlines() if l.startswith("| NS GAN |")]
  assert "| 4 | 1 | 10.0" in line and "6.8±0.5" in line  # Lucic beside
  for png in ("budget.png", "scores.png"):
    assert os.path.getsize(os.path.join(args.out, png)) > 1000


def test_bad_flags_name_what_is_allowed(capsys):
  with pytest.raises(SystemExit) as e:
    ls.parse_args(["--variants=ns_gan,bogus"])
  assert e.value.code == 2
  assert "bogus not among" in capsys.readouterr().err
  with pytest.raises(SystemExit):
    ls.parse_args(["--trials=0"])


def test_a_stopped_study_compares_equal_budgets(args):
  args.variants = ["NS GAN", "hinge"]
  fake_sweep(args, "NS GAN", [30.0, 10.0, 20.0])
  fake_sweep(args, "hinge", [5.0, 50.0, None], ["finished", "finished",
                                                 "running"])
  rows = ls.collect(args)
  assert sorted((r["variant"], r["trial"]) for r in rows) == [
      ("NS GAN", "t0"), ("NS GAN", "t1"), ("hinge", "t0"), ("hinge", "t1")]
