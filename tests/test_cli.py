"""Bad input: one line on stderr, exit code 2, nothing written."""

import os
import subprocess
import sys

import pytest

from conftest import REPO

BAD = [
    ("--config.gan.foo=1", "unknown config field config.gan.foo"),
    ("--config.train.num_steps=abc", "config.train.num_steps=abc"),
    ("--config.gan.loss=foo", "config.gan.loss='foo' is not one of: hinge"),
    ("--config.gan.penalty=foo", "config.gan.penalty='foo' is not one of: "
     "dragan, dragan_compare_gan, none, r1, wgan_gp"),
    ("--config.model.d_norm=foo", "config.model.d_norm='foo' is not one of: "
     "batch, layer, spectral, none, layer_channel"),
    ("--config.data.name=foo", "config.data.name='foo' is not one of: "
     "binarized_mnist, celeb_a, cifar10, cycle_gan, digit_domains"),
    ("--config.data.batch_size=12", "config.data.batch_size=12 must be "
     "divisible by the 8 devices"),
    ("--config.train.num_steps=0", "config.train.num_steps=0 must be positive"),
    ("--config.train.num_steps=-3", "config.train.num_steps=-3 must be "
     "positive"),
    ("--config.wandb.mode=foo", "config.wandb.mode='foo' is not one of"),
    ("--config.gan.pack=3", "config.data.batch_size=16 must be divisible by "
     "config.gan.pack=3"),
    ("--config.train.num_seeds=3", "config.train.num_seeds=3 must be "
     "divisible by the 8 devices"),
]


def run_cli(*args, cwd=REPO):
  env = dict(os.environ)
  return subprocess.run([sys.executable, "-m", "gen_jax.main", *args],
                        capture_output=True, text=True, cwd=cwd, env=env,
                        timeout=300)


@pytest.mark.parametrize("flag,message", BAD)
def test_bad_input_gets_one_line_and_exit_2(tmp_path, flag, message):
  workdir = tmp_path / "run"
  result = run_cli("--config=configs/dcgan.py:digits,small",
                   f"--workdir={workdir}", flag)
  assert result.returncode == 2, result.stderr
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1, result.stderr
  assert message in lines[0]
  assert "Traceback" not in result.stderr
  assert not workdir.exists()


@pytest.mark.parametrize("args,message", [
    (["--config=configs/nope.py"], "cannot load --config"),
    (["--config=configs/dcgan.py:digits,mnist"], "more than one dataset"),
    ([], "--config is required"),
    (["--config=configs/vae.py:small", "--config.model.likelihood=foo"],
     "config.model.likelihood='foo' is not one of: bernoulli, gaussian"),
])
def test_bad_config_file_or_argument(tmp_path, args, message):
  result = run_cli(*args, f"--workdir={tmp_path / 'run'}")
  assert result.returncode == 2
  assert message in result.stderr.strip().splitlines()[-1]
  assert "Traceback" not in result.stderr
  assert not (tmp_path / "run").exists()


def test_cli_trains_and_resumes(tmp_path):
  workdir = tmp_path / "run"
  args = ["--config=configs/gan_2d.py:ring,small", f"--workdir={workdir}"]
  first = run_cli(*args)
  assert first.returncode == 0, first.stderr
  second = run_cli(*args, "--config.train.num_steps=6")
  assert second.returncode == 0, second.stderr
  assert '"step": 6' in second.stdout
