"""The training loop end to end on every config at small size."""

import glob
import json
import os

import pytest

from conftest import REPO, load_config
from gen_jax import train

CONFIGS = sorted(os.path.splitext(os.path.basename(p))[0]
                 for p in glob.glob(os.path.join(REPO, "configs", "*.py")))
SMOKE = [(name, "small") for name in CONFIGS] + [
    ("dcgan", "stacked_digits,small"), ("gan_2d", "grid,small"),
    ("gan_2d", "swiss_roll,small")]

# The metric each sweep-able config reports in summary.json.
SUMMARY_METRIC = {"dcgan:small": "eval/fid", "wgan_gp:small": "eval/fid",
                  "gan_2d:small": "eval/reverse_kl",
                  "gan_2d:grid,small": "eval/modes",
                  "vae:small": "eval/neg_elbo",
                  "autoencoder:small": "eval/recon"}


def read_metrics(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def test_all_four_configs_exist():
  assert {"dcgan", "wgan_gp", "vae", "gan_2d"} <= set(CONFIGS)


@pytest.mark.parametrize("name,arg", SMOKE)
def test_smoke_run_writes_everything(tmp_path, name, arg):
  config = load_config(name, arg)
  workdir = str(tmp_path)
  final = train.train_and_evaluate(config, workdir)
  assert final["step"] == config.train.num_steps
  records = read_metrics(workdir)
  train_records = [r for r in records if "steps_per_sec" in r]
  assert [r["step"] for r in train_records] == list(
      range(config.train.log_every, config.train.num_steps + 1,
            config.train.log_every))
  loss_key = {"vae": "recon", "cyclegan": "cycle_a"}.get(config.trainer,
                                                         "d_loss")
  assert all(loss_key in r for r in train_records)
  if config.data.name != "swiss_roll":  # no metric is defined for it
    assert any(k.startswith("eval/") for k in final)
  # summary.json: the final metrics, what sweeps optimise (test_sweep.py).
  summary = json.load(open(os.path.join(workdir, "summary.json")))
  assert summary == pytest.approx(final, nan_ok=True)  # reverse_kl_hq: nan
  assert SUMMARY_METRIC.get(f"{name}:{arg}", "step") in summary
  # A plain autoencoder has no prior: its pictures are reconstructions.
  picture = ("reconstructions_" if config.trainer == "vae"
             and config.ae.objective == "reconstruction" else "")
  assert os.path.exists(os.path.join(
      workdir, "samples", f"{picture}step_{config.train.num_steps:07d}.png"))
  assert json.load(open(os.path.join(workdir, "config.json")))["trainer"] == \
      config.trainer
  steps = sorted(int(d) for d in os.listdir(os.path.join(workdir,
                                                         "checkpoints"))
                 if d.isdigit())
  assert steps[-1] == config.train.num_steps


def test_second_run_in_workdir_continues_the_step_count(tmp_path):
  config = load_config("dcgan", "small")
  workdir = str(tmp_path)
  train.train_and_evaluate(config, workdir)
  config.train.num_steps = 6
  final = train.train_and_evaluate(config, workdir)
  assert final["step"] == 6
  steps = [r["step"] for r in read_metrics(workdir) if "steps_per_sec" in r]
  # Steps 2 and 4 come from the first run, 6 from the resumed one: no step
  # was trained twice or restarted from zero.
  assert steps == [2, 4, 6]


def test_vae_held_out_elbo_is_reported(tmp_path):
  config = load_config("vae", "small")
  final = train.train_and_evaluate(config, str(tmp_path))
  assert final["eval/neg_elbo"] == pytest.approx(
      final["eval/recon"] + final["eval/kl"], rel=1e-5)


def test_wandb_offline_run_files_live_in_the_workdir(tmp_path, monkeypatch):
  monkeypatch.setenv("WANDB_MODE", "offline")
  config = load_config("gan_2d", "ring,small")
  config.wandb.mode = "offline"
  train.train_and_evaluate(config, str(tmp_path))
  runs = glob.glob(str(tmp_path / "wandb" / "offline-run-*"))
  assert len(runs) == 1
  assert glob.glob(os.path.join(runs[0], "*.wandb"))
