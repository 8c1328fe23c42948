"""experiments/mode_collapse_2d.py: its tables, flags and files."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "experiments"))

import mode_collapse_2d as mc  # noqa: E402

SCRIPT = os.path.join(REPO, "experiments", "mode_collapse_2d.py")


def fake_runs(method: str, modes: list[list[float]], hq: float = 90.0,
              kl: float = 0.1) -> list[dict]:
  """Seeds whose 'modes' history is modes[seed] (one value per step)."""
  runs = []
  for seed, history in enumerate(modes):
    steps = [100 * (i + 1) for i in range(len(history))]
    hist = [{"step": s, "modes": m, "hq": hq, "reverse_kl_hq": kl}
            for s, m in zip(steps, history)]
    runs.append({"method": method, "dataset": "ring", "seed": seed,
                 "samples": f"samples/ring_{method}_seed{seed}.npy",
                 "metrics": dict(hist[-1]), "history": hist})
  return runs


def row(lines: list[str], method: str) -> list[str]:
  return next(line for line in lines if line.startswith(f"| {method} |")
              ).split(" | ")


def test_table_flags_only_cells_outside_the_published_error_bars():
  # PacGAN ring: GAN 6.3+-0.5 modes; PacGAN2 7.9+-0.1.
  runs = fake_runs("GAN", [[5.0, 6.0], [6.0, 7.0]])      # 6.5+-0.5: inside
  runs += fake_runs("PacGAN2", [[3.0, 4.0], [4.0, 5.0]])  # 4.5+-0.5: outside
  lines = mc.table(runs, "ring", ["GAN", "PacGAN2"])
  gan, pac = row(lines, "GAN"), row(lines, "PacGAN2")
  assert gan[1] == "6.5±0.5" and "modes:" not in gan[-1]
  assert pac[1] == "4.5±0.5"
  # Moving towards 7.9 (3.5 -> 4.5 over the schedule): the schedule.
  assert "modes: schedule: moving towards it (3.5 at step 100, 4.5 at 200)" \
      in pac[-1]
  # %HQ 90 against 98.2+-0.2 and 95.6+-2.0: outside both, flat history.
  assert "%HQ: not the schedule alone" in gan[-1]
  assert "%HQ: not the schedule alone" in pac[-1]


def test_why_says_schedule_only_when_the_gap_shrinks():
  assert mc.why([(1, 2.0, 0.0), (2, 3.0, 0.0)], 8.0).startswith("schedule")
  assert mc.why([(1, 3.0, 0.0), (2, 2.0, 0.0)], 8.0).startswith("not")
  assert mc.why([(1, 2.0, 0.0)], 8.0).startswith("not")
  assert mc.why([(1, 2.0, 0.0), (2, 8.2, 0.0)], 8.0).startswith(
      "not the schedule: ours went past it")


def test_schedule_table_has_a_column_per_evaluation():
  runs = fake_runs("GAN", [[2.0, 4.0, 6.0], [4.0, 6.0, 8.0]], hq=50.0)
  lines = mc.schedule_table(runs, "ring", ["GAN"])
  assert lines[0] == "| ring: method | 1/3 | 2/3 | 3/3 |"
  assert row(lines, "GAN")[1:] == ["3.0±1.0 / 50.0±0.0",
                                   "5.0±1.0 / 50.0±0.0",
                                   "7.0±1.0 / 50.0±0.0 |"]


@pytest.mark.parametrize("flag,message", [
    ("--methods=GAN,BiGAN", "--methods: unknown 'BiGAN'"),
    ("--datasets=spiral", "--datasets: unknown 'spiral'"),
    ("--trials=0", "--trials must be at least 1"),
])
def test_bad_flags_get_one_line_and_exit_2(tmp_path, flag, message):
  out = subprocess.run([sys.executable, SCRIPT, flag,
                        f"--workdir={tmp_path}"], capture_output=True,
                       text=True, cwd=REPO)
  assert out.returncode == 2
  assert message in out.stderr
  assert "Traceback" not in out.stderr
  assert not os.listdir(tmp_path)


def test_end_to_end_writes_every_run(tmp_path):
  out = tmp_path / "out"
  methods = ["GAN", "PacGAN2", "WGAN-GP", "Unrolled2"]
  proc = subprocess.run(
      [sys.executable, SCRIPT, "--trials=2", "--steps=10", "--evals=2",
       "--unroll_steps=2", "--datasets=ring", f"--methods={','.join(methods)}",
       f"--workdir={tmp_path / 'runs'}", f"--out={out}"],
      capture_output=True, text=True, cwd=REPO)
  assert proc.returncode == 0, proc.stderr[-2000:]
  results = json.loads((out / "results.json").read_text())
  runs = results["runs"]
  assert sorted((r["method"], r["seed"]) for r in runs) == sorted(
      (m, s) for m in methods for s in (0, 1))
  for r in runs:
    samples = np.load(out / r["samples"])
    assert samples.shape == (2500, 2) and np.isfinite(samples).all()
    # The schedule is in epochs: WGAN-GP's 5 critic steps, 1/5 the steps.
    expected = [1, 2] if r["method"] == "WGAN-GP" else [5, 10]
    assert [h["step"] for h in r["history"]] == expected
    assert r["metrics"]["modes"] == r["history"][-1]["modes"]
  # Seeds differ, and each seed's samples are the loop's final samples.
  a, b = (np.load(out / r["samples"]) for r in runs[:2])
  assert not np.allclose(a, b)
  final = np.load(tmp_path / "runs" / "ring_GAN" / "samples" /
                  "step_0000010.npy")
  np.testing.assert_array_equal(final[1], np.load(
      out / "samples" / "ring_GAN_seed1.npy"))
  text = (out / "results.md").read_text()
  assert "| PacGAN2 |" in text and "7.9±0.1 / 95.6±2.0 / 0.07±0.03" in text
  assert (out / "scatter.png").stat().st_size > 10_000
  assert "PacGAN Table 1" in proc.stdout


def test_a_kl_over_no_high_quality_samples_is_reported_as_undefined():
  runs = fake_runs("GAN", [[6.0], [7.0]], kl=float("nan"))
  assert "| undefined (no HQ samples) |" in mc.table(runs, "ring", ["GAN"])[-1]
  runs[0]["metrics"]["reverse_kl_hq"] = 0.5
  assert "0.50±0.00 (1 seeds without HQ samples)" in mc.table(
      runs, "ring", ["GAN"])[-1]
