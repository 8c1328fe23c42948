"""The TPU and Slurm launch scripts: valid bash, a usage line, the real entry
point, and shellcheck-clean where shellcheck is installed."""

import glob
import os
import shutil
import subprocess

import pytest

from conftest import REPO

SCRIPTS = sorted(glob.glob(os.path.join(REPO, "tpu", "*.sh"))
                 + glob.glob(os.path.join(REPO, "gpu", "*.sbatch")))
NAMES = [os.path.relpath(p, REPO) for p in SCRIPTS]


def test_the_scripts_exist():
  assert {"tpu/create.sh", "tpu/setup.sh", "tpu/run.sh",
          "tpu/sweep_agent.sh", "tpu/delete.sh",
          "gpu/slurm.sbatch"} <= set(NAMES)


@pytest.mark.parametrize("path", SCRIPTS, ids=NAMES)
def test_script_parses_and_has_usage(path):
  result = subprocess.run(["bash", "-n", path], capture_output=True, text=True)
  assert result.returncode == 0, result.stderr
  text = open(path).read()
  if not path.endswith("common.sh"):
    assert "usage:" in text
    assert os.access(path, os.X_OK) or path.endswith(".sbatch")


def test_scripts_run_the_real_entry_point():
  text = {n: open(p).read() for n, p in zip(NAMES, SCRIPTS)}
  assert "-m gen_jax.main" in text["tpu/run.sh"]
  assert "-m gen_jax.main" in text["gpu/slurm.sbatch"]
  assert "wandb agent" in text["tpu/sweep_agent.sh"]
  assert '".[tpu]"' in text["tpu/setup.sh"]
  with open(os.path.join(REPO, "pyproject.toml")) as f:
    assert 'tpu = ["jax[tpu]' in f.read()


@pytest.mark.parametrize("args", [[], ["only-a-name"]])
def test_wrong_arguments_print_usage_and_exit_2(args):
  env = dict(os.environ, ZONE="us-central2-b")
  for script in ("create.sh", "run.sh", "sweep_agent.sh"):
    result = subprocess.run(["bash", os.path.join(REPO, "tpu", script), *args],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 2
    assert result.stderr.startswith("error: usage:"), result.stderr


def test_zone_is_required():
  env = {k: v for k, v in os.environ.items() if k != "ZONE"}
  result = subprocess.run(["bash", os.path.join(REPO, "tpu", "run.sh"), "x",
                           "--config=c"], capture_output=True, text=True,
                          env=env)
  assert result.returncode == 2 and "set ZONE" in result.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None,
                    reason="shellcheck is not installed")
def test_shellcheck_is_clean():
  result = subprocess.run(["shellcheck", "-x", *NAMES], cwd=REPO,
                          capture_output=True, text=True)
  assert result.returncode == 0, result.stdout
