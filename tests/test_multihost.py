"""Two processes x 4 CPU devices on localhost (jax.distributed, gloo CPU
collectives), started through the CLI as on a pod, train like one process
with 8 devices, share one workdir, and resume."""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

import jax
import pytest

from conftest import REPO, load_config
from parity import TOLERANCE, relative_difference
from gen_jax import checkpoint, data, parallel, train, trainers, workdir_lock
from gen_jax.errors import UserError
from gen_jax.workdir_lock import WorkdirBusy

CONFIG = "gan_2d"   # an MLP generator with batch norm: global batch moments
ARG = "ring,small"  # batch 16, checkpoints every 2 steps
# Not a multiple of the 8 devices: evaluation rounds the sample count up.
EVAL_SAMPLES = 61


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def start_processes(workdir, *flags, processes: int = 2,
          devices: int = 4) -> list[subprocess.Popen]:
  """Starts `python -m gen_jax.main` as `processes` processes of `devices`
  CPU devices each, one run (stdout and stderr piped)."""
  env = dict(os.environ)
  env["XLA_FLAGS"] = " ".join(
      [f for f in env.get("XLA_FLAGS", "").split()
       if "xla_force_host_platform_device_count" not in f]
      + [f"--xla_force_host_platform_device_count={devices}"])
  env.update(JAX_PLATFORMS="cpu", JAX_CPU_COLLECTIVES_IMPLEMENTATION="gloo",
             PYTHONPATH=REPO + os.pathsep + env.get("PYTHONPATH", ""))
  port = free_port()
  return [subprocess.Popen(
      [sys.executable, "-m", "gen_jax.main", f"--config=configs/{CONFIG}.py:"
       f"{ARG}", f"--workdir={workdir}",
       f"--coordinator_address=localhost:{port}",
       f"--num_processes={processes}", f"--process_id={i}", *flags],
      cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
      text=True) for i in range(processes)]


def launch(workdir, *flags, processes: int = 2, devices: int = 4):
  """Runs `start_processes(...)`'s processes to the end; asserts that each
  exits 0 and returns their (returncode, stdout, stderr)."""
  return finish(start_processes(workdir, *flags, processes=processes,
                                devices=devices))


def finish(procs: list[subprocess.Popen]):
  results = []
  try:
    for p in procs:
      out, err = p.communicate(timeout=400)
      results.append((p.returncode, out, err))
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  for i, (code, _, err) in enumerate(results):
    assert code == 0, f"process {i} failed:\n{err[-3000:]}"
  return results


def restore(workdir: str, step: int):
  """(initial state, state at `step`) of a run's checkpoint, on 8 devices."""
  config = load_config(CONFIG, ARG)
  info = data.get_dataset(config.data).info
  mesh = parallel.make_mesh()
  trainer = trainers.create(config, info, parallel.constrainer(mesh))
  rep = parallel.replicated(mesh)
  key = jax.random.key(config.seed)
  target = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=rep),
      jax.eval_shape(trainer.init, key))
  ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"))
  try:
    state = ckpt.restore(step, target)[0]
  finally:
    ckpt.close()
  return jax.device_get(trainer.init(key)), jax.device_get(state)


def train_records(workdir) -> list[int]:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line)["step"] for line in f
            if "steps_per_sec" in line]


def test_two_processes_train_like_one_and_resume(tmp_path):
  reference = str(tmp_path / "one_process")
  config = load_config(CONFIG, ARG)
  config.train.num_steps = 8
  config.train.num_eval_samples = EVAL_SAMPLES
  train.train_and_evaluate(config, reference)

  shared = str(tmp_path / "two_processes")
  samples = f"--config.train.num_eval_samples={EVAL_SAMPLES}"
  procs = start_processes(shared, "--config.train.num_steps=4", samples)
  # The run owns the workdir: process 0 holds its lock, process 1 sees the
  # run's token there and goes on; a process of another run is refused.
  try:
    lock, deadline = os.path.join(shared, ".lock"), time.time() + 300
    while time.time() < deadline and not (os.path.exists(lock)
                                          and open(lock).read()):
      time.sleep(0.01)
    with pytest.raises(WorkdirBusy, match=re.escape(
        f"'{shared}' is in use by another run: pid {procs[0].pid} on host")):
      with workdir_lock.hold(shared):
        pass
  finally:
    finish(procs)
  results = launch(shared, "--config.train.num_steps=6", samples)  # resumes

  # Only process 0 writes metrics, samples and the final line; each process
  # writes its data position into the shared checkpoint.
  assert train_records(shared) == [2, 4, 6]
  assert '"step": 6' in results[0][1] and '"step"' not in results[1][1]
  assert '"eval/modes"' in results[0][1]
  assert sorted(os.listdir(os.path.join(shared, "samples"))) == [
      "step_0000004.png", "step_0000006.png"]
  assert sorted(f for f in os.listdir(os.path.join(
      shared, "checkpoints", "6", "data")) if f.endswith(".json")) == [
          "process_0-of-2.json", "process_1-of-2.json"]

  start, expected = restore(reference, 6)
  _, got = restore(shared, 6)
  difference = relative_difference(expected, got, start)
  print(f"2x4 vs 1x8 devices after 6 steps: relative parameter difference "
        f"{difference:.3g}")
  assert difference < TOLERANCE

  # Positions that differ between processes (as a file-backed pipeline's may)
  # resume only with as many processes as wrote them.
  tampered = str(tmp_path / "tampered")
  shutil.copytree(shared, tampered)
  with open(os.path.join(tampered, "checkpoints", "6", "data",
                         "process_1-of-2.json"), "w") as f:
    json.dump({"batches": 1}, f)
  config.train.num_steps = 8
  with pytest.raises(UserError, match="resume with 2 processes, not 1"):
    train.train_and_evaluate(config, tampered)

  # One process resumes the two processes' checkpoint (same data position).
  train.train_and_evaluate(config, shared)
  _, expected = restore(reference, 8)
  _, got = restore(shared, 8)
  assert relative_difference(expected, got, start) < TOLERANCE
  assert train_records(shared) == [2, 4, 6, 8]



def test_data_positions_are_per_process(tmp_path, monkeypatch):
  """Each process restores its own position; another process count resumes
  only from positions that agree."""
  handler = checkpoint.ProcessJsonHandler()

  def as_process(index, count):
    monkeypatch.setattr(jax, "process_index", lambda: index)
    monkeypatch.setattr(jax, "process_count", lambda: count)

  for i in range(2):
    as_process(i, 2)
    handler.save(tmp_path, checkpoint.ProcessJsonSave({"batches": 10 + i}))
  for i in range(2):
    as_process(i, 2)
    assert handler.restore(tmp_path) == {"batches": 10 + i}
  as_process(0, 1)
  with pytest.raises(UserError, match="resume with 2 processes, not 1"):
    handler.restore(tmp_path)
  as_process(1, 2)
  handler.save(tmp_path, checkpoint.ProcessJsonSave({"batches": 10}))
  as_process(0, 4)
  assert handler.restore(tmp_path) == {"batches": 10}


# -- the CLI's multi-process flags ---------------------------------------------

@pytest.mark.parametrize("flags,message", [
    (["--coordinator_address=localhost:1"], "must be given together"),
    (["--coordinator_address=localhost:1", "--num_processes=2",
      "--process_id=2"], "--process_id=2 must be in [0, --num_processes=2)"),
    (["--workdir=gs://bucket/run"], "URLs are not supported"),
])
def test_bad_distributed_flags_get_one_line(tmp_path, flags, message):
  from test_cli import run_cli
  result = run_cli("--config=configs/gan_2d.py:ring,small",
                   f"--workdir={tmp_path / 'run'}", *flags)
  assert result.returncode == 2, result.stderr
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and message in lines[0], result.stderr
  assert not (tmp_path / "run").exists()


def test_cluster_detection():
  from gen_jax.main import cluster_detected
  assert not cluster_detected({})  # this machine is no TPU VM
  assert not cluster_detected({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "1"})
  assert cluster_detected({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "16"})
  assert not cluster_detected({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "16",
                               "SLURM_STEP_NUM_TASKS": "1"})
  assert cluster_detected({"TPU_WORKER_HOSTNAMES": "t0,t1,t2,t3"})


def test_nothing_starts_the_jax_backend_before_distributed_initialize():
  """jax.distributed.initialize must come before any JAX computation; main.py
  calls it after importing gen_jax and loading the config, so neither may
  touch a device (a module-level jnp constant would)."""
  code = (
      "import glob, importlib, pkgutil, gen_jax\n"
      "from jax._src import xla_bridge\n"
      "from conftest import load_config\n"
      "for m in pkgutil.walk_packages(gen_jax.__path__, 'gen_jax.'):\n"
      "  importlib.import_module(m.name)\n"
      "for p in glob.glob('configs/*.py'):\n"
      "  load_config(p.split('/')[-1][:-3], 'small')\n"
      "assert not xla_bridge.backends_are_initialized()\n")
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      [REPO, os.path.join(REPO, "tests"), os.environ.get("PYTHONPATH", "")]))
  result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]


def test_processes_that_do_not_share_the_workdir_stop(tmp_path):
  """As on a pod whose --workdir is each host's local disk."""
  port = free_port()
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
             JAX_PLATFORMS="cpu", PYTHONPATH=REPO)
  procs = [subprocess.Popen(
      [sys.executable, "-m", "gen_jax.main",
       f"--config=configs/{CONFIG}.py:{ARG}", f"--workdir={tmp_path / str(i)}",
       f"--coordinator_address=localhost:{port}", "--num_processes=2",
       f"--process_id={i}"], cwd=REPO, env=env, stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True) for i in range(2)]
  try:
    results = [p.communicate(timeout=300) for p in procs]
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  for p, (_, err) in zip(procs, results):
    assert p.returncode == 2, err[-2000:]
    assert "is not shared: process(es) 1 do not see" in err.splitlines()[-1]
  assert not (tmp_path / "0" / "checkpoints").exists()
