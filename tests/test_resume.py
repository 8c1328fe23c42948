"""Resuming after kills, preemption and Ctrl-C is exact (real subprocesses).

One workdir is interrupted again and again -- SIGKILL in the middle of a
checkpoint save, SIGKILL during evaluation, SIGTERM, SIGKILL mid-training,
SIGINT -- and resumed each time with the same command; its final checkpoint
(every leaf, both optimisers, EMA weights, batch-norm statistics, PRNG key,
step, data position) and metrics.jsonl must be bitwise those of a run never
interrupted. Checkpoint steps (2, 4, 6) are deliberately not multiples of the
log interval (3), so the first log after a resume averages steps from before
and after the interruption.
"""

import glob
import json
import os
import re
import subprocess
import sys

import pytest

from conftest import REPO, assert_bitwise_equal, read_checkpoint

FLAGS = ["--config=configs/gan_2d.py:ring,small",
         "--config.train.num_steps=8", "--config.train.log_every=3",
         "--config.train.eval_every=4", "--config.train.checkpoint_every=2",
         "--config.train.keep_checkpoints=2", "--config.gan.n_critic=2",
         "--config.gan.ema_decay=0.9", "--config.model.d_norm=batch"]
# CycleGAN: its image pools (state.aux) and its two independently shuffled
# data streams must survive a kill too (checkpoints every 2 steps; log 3).
CYCLEGAN_FLAGS = ["--config=configs/cyclegan.py:digit_domains,small",
                  "--config.train.num_steps=8", "--config.train.log_every=3",
                  "--config.train.eval_every=8",
                  "--config.train.checkpoint_every=2",
                  "--config.train.keep_checkpoints=2"]
TIMING = ("steps_per_sec",)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
  e = dict(os.environ)
  e["PYTHONPATH"] = REPO
  # A shared compilation cache: the many short runs compile once.
  e["JAX_COMPILATION_CACHE_DIR"] = str(tmp_path_factory.mktemp("jax_cache"))
  e["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  return e


def start(env, workdir, fault=None, flags=tuple(FLAGS)):
  script = (["-m", "gen_jax.main"] if fault is None else
            [os.path.join(REPO, "tests", "faulty_main.py"), *fault])
  return subprocess.Popen([sys.executable, *script, *flags,
                           f"--workdir={workdir}"], cwd=REPO, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)


def finish(process):
  out, err = process.communicate(timeout=600)
  return process.returncode, err


def run(env, workdir, fault=None, flags=tuple(FLAGS)):
  return finish(start(env, workdir, fault, flags))


def metrics(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    records = [json.loads(line) for line in f]
  return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


def steps_in(workdir):
  return sorted(os.listdir(os.path.join(workdir, "checkpoints")))


def test_interrupted_run_resumes_bitwise(tmp_path, env):
  reference = start(env, tmp_path / "reference")  # runs alongside the others
  workdir = tmp_path / "interrupted"

  code, err = run(env, workdir, ("kill_mid_save", "4"))
  assert code == -9, err
  # The fault fired mid-save: step 4 exists only as an uncommitted tmp dir.
  assert "2" in steps_in(workdir) and "4" not in steps_in(workdir)
  assert any(d.startswith("4.orbax-checkpoint-tmp") for d in steps_in(workdir))

  code, err = run(env, workdir, ("kill_in_eval", "4"))
  assert code == -9, err
  assert "resuming" in err and "from step 2" in err
  assert not any("tmp" in d for d in steps_in(workdir))  # cleaned up

  code, err = run(env, workdir, ("sigterm_at_batch", "2"))
  assert code == 0, err
  preempted = re.search(r"preempted \(SIGTERM\) at step (\d+)", err)
  assert preempted, err
  assert preempted.group(1) in steps_in(workdir)
  assert "Traceback" not in err

  code, err = run(env, workdir, ("kill_at_batch", "5"))
  assert code == -9, err

  code, err = run(env, workdir, ("sigint_at_batch", "2"))
  assert code == 0, err
  assert re.search(r"preempted \(SIGINT\) at step \d+", err), err

  code, err = run(env, workdir)
  assert code == 0, err
  code, err = finish(reference)
  assert code == 0, err

  assert metrics(workdir) == metrics(tmp_path / "reference")
  assert steps_in(workdir) == steps_in(tmp_path / "reference") == ["6", "8"]
  for step in (6, 8):
    assert_bitwise_equal(read_checkpoint(workdir, step),
                         read_checkpoint(tmp_path / "reference", step))
  assert glob.glob(str(workdir / "samples" / "step_0000008.png"))


def test_killed_cyclegan_resumes_bitwise(tmp_path, env):
  """SIGKILL mid-training, then SIGTERM, then a plain resume: CycleGAN's
  final checkpoint (four networks, their Adams, the pools and their fill
  counts, both streams' positions) and metrics are bitwise those of an
  uninterrupted run. (Its in-process resume: tests/test_cyclegan.py.)"""
  flags = tuple(CYCLEGAN_FLAGS)
  reference = start(env, tmp_path / "reference", flags=flags)
  workdir = tmp_path / "interrupted"
  # Each step draws two batches (domain B's `x`, domain A's `cond`), and
  # the loop draws up to 3 steps ahead: the 15th draw (step 8's) comes
  # after step 4 ended, whose save waited for step 2's to be on disk.
  code, err = run(env, workdir, ("kill_at_batch", "15"), flags)
  assert code == -9, err
  code, err = run(env, workdir, ("sigterm_at_batch", "3"), flags)
  assert code == 0, err
  assert "resuming" in err and re.search(r"preempted \(SIGTERM\)", err), err
  code, err = run(env, workdir, flags=flags)
  assert code == 0, err
  code, err = finish(reference)
  assert code == 0, err
  assert metrics(workdir) == metrics(tmp_path / "reference")
  assert steps_in(workdir) == steps_in(tmp_path / "reference") == ["6", "8"]
  assert_bitwise_equal(read_checkpoint(workdir, 8),
                       read_checkpoint(tmp_path / "reference", 8))
