"""Sweep files, the offline executor, and runs as `wandb agent` starts them."""

import csv
import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from conftest import REPO
from gen_jax import sweep

SWEEP_FILES = sorted(glob.glob(os.path.join(REPO, "configs", "sweeps",
                                            "*.yaml")))
# Fields added on branch `lab`, not merged yet: their parameters are skipped
# while the config lacks them (and checked as soon as it has them). Remove
# this once `lab` is merged.
# Metrics that the sweeps may optimise, per config file, with their goal.
SUMMARY_METRICS = {
    "dcgan.py": {("eval/fid", "minimize"), ("eval/kid", "minimize")},
    "wgan_gp.py": {("eval/fid", "minimize"), ("eval/kid", "minimize")},
    "gan_2d.py": {("eval/reverse_kl", "minimize"), ("eval/modes", "maximize"),
                  ("eval/hq", "maximize")},
    "vae.py": {("eval/neg_elbo", "minimize")},
}


def _sweeps():
  return sweep._sweeps()


def _params():
  for path in SWEEP_FILES:
    with open(path) as f:
      spec = yaml.safe_load(f)
    for name in spec["parameters"]:
      yield os.path.basename(path), name


def test_there_are_the_three_sweeps():
  names = {os.path.basename(p) for p in SWEEP_FILES}
  assert {"stability_tricks.yaml", "loss_comparison.yaml",
          "mode_collapse.yaml"} <= names


@pytest.mark.parametrize("path", SWEEP_FILES, ids=os.path.basename)
def test_sweep_file_passes_the_official_schema(path):
  with open(path) as f:
    spec = yaml.safe_load(f)
  assert _sweeps().schema_violations_from_proposed_config(spec) == []
  assert spec["method"] in sweep.METHODS
  assert "${args}" in spec["command"]
  loaded = sweep.load(path, check=False)
  assert loaded.config_args[0].startswith("--config=configs/")
  # A metric that the command's config reports in summary.json (test_train
  # checks that each config's summary.json has these), with its direction.
  config_file = loaded.config_args[0].split("=")[1].split(":")[0]
  name, goal = spec["metric"]["name"], spec["metric"]["goal"]
  assert (name, goal) in SUMMARY_METRICS[os.path.basename(config_file)]
  if spec["method"] == "grid":
    assert sweep.grid_size(loaded) > 1


@pytest.mark.parametrize("filename,name", list(_params()))
def test_sweep_parameter_is_a_config_field_of_the_right_type(filename, name):
  loaded = sweep.load(os.path.join(REPO, "configs", "sweeps", filename),
                      check=False)
  config = sweep._load_config(loaded.config_args)
  sweep._field(config, name, "")  # raises UserError for a missing field
  sweep.check_parameter(loaded, name, loaded.spec["parameters"][name],
                        validate=True)


def _tiny(tmp_path, method="grid", parameters=None, extra=(),
          filename="tiny.yaml", **top):
  spec = {"name": "tiny", "method": method,
          "metric": {"name": "eval/reverse_kl", "goal": "minimize"},
          "parameters": parameters or {
              "config.optim.d_lr": {"values": [1.0e-4, 1.0e-3]}},
          "command": ["${env}", "${interpreter}", "-m", "gen_jax.main",
                      "--config=configs/gan_2d.py:ring,small", *extra,
                      "${args}"], **top}
  path = tmp_path / filename
  path.write_text(yaml.safe_dump(spec))
  return str(path)


@pytest.mark.parametrize("change,message", [
    ({"foo": 1}, "'foo' was unexpected"),
    ({"method": "annealing"}, "'annealing' is not one of"),
    ({"method": "custom"}, "method 'custom' is not one of: grid, random"),
    ({"parameters": {"config.gan.foo": {"values": [1]}}},
     "parameter config.gan.foo is not a field of configs/gan_2d.py:ring,small:"
     " config.gan has no field 'foo' (it has: ac_weight, ada_interval,"
     " ada_kimg"),
    ({"parameters": {"gan.loss": {"values": ["hinge"]}}},
     "parameter gan.loss is not a config field"),
    ({"parameters": {"config.optim.d_lr": {"values": ["1e-4"]}}},
     "value '1e-4' (str) does not fit the field's type float (YAML reads 1e-4 "
     "as a string: write 1.0e-4)"),
    ({"parameters": {"config.gan.n_critic": {"values": [1, 2.5]}}},
     "parameter config.gan.n_critic: value 2.5 (float) does not fit"),
    ({"parameters": {"config.gan.loss": {"values": ["hinge", "foo"]}}},
     "parameter config.gan.loss='foo': config.gan.loss='foo' is not one of"),
    ({"parameters": {"config.gan.n_critic": {"distribution": "uniform",
                                             "min": 1, "max": 5}}},
     "does not fit the field's type int"),
    ({"command": ["python", "-m", "gen_jax.main"]},
     "the command must contain ${args} once"),
])
def test_bad_sweep_file_gets_one_line_and_exit_2(tmp_path, capsys, change,
                                                 message):
  path = _tiny(tmp_path)
  spec = yaml.safe_load(open(path))
  spec.update(change)
  open(path, "w").write(yaml.safe_dump(spec))
  code = sweep.main([path, f"--workdir={tmp_path / 'out'}"])
  err = capsys.readouterr().err
  assert code == 2
  assert len(err.strip().splitlines()) == 1, err
  assert message in err
  assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args,message", [
    (["nope.yaml"], "cannot read sweep file nope.yaml"),
    (["{tiny_random}"], "a random sweep never ends by itself: give --max_runs"),
    (["{tiny}", "--workers=0"], "must be positive"),
    (["{tiny}", "--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_arguments_get_one_line_and_exit_2(tmp_path, capsys, args,
                                               message):
  files = {"tiny": _tiny(tmp_path),
           "tiny_random": _tiny(tmp_path, method="random",
                               filename="random.yaml")}
  args = [a.format(**files) for a in args]
  assert sweep.main([*args, f"--workdir={tmp_path / 'out'}"]) == 2
  err = capsys.readouterr().err
  assert len(err.strip().splitlines()) == 1 and message in err, err


def test_args_are_formatted_as_wandb_agent_formats_them():
  from wandb.sdk.launch.sweeps.utils import create_sweep_command_args
  params = {"config.optim.d_lr": 1e-5, "config.optim.g_lr": 0.0002,
            "config.model.mlp.g_batch_norm": False, "config.gan.n_critic": 5,
            "config.gan.loss": "hinge", "config.model.mlp.g_hidden": [32, 32]}
  wandb_args = create_sweep_command_args(
      {"args": {k: {"value": v} for k, v in params.items()}})["args"]
  assert sweep.args_for(params) == wandb_args
  # ...and gen_jax.main's parser (absl + config_flags) reads them back.
  config = sweep._load_config(["--config=configs/gan_2d.py:ring,small",
                               *wandb_args])
  assert config.optim.d_lr == 1e-5 and config.optim.g_lr == 0.0002
  assert config.model.mlp.g_batch_norm is False and config.gan.n_critic == 5
  assert config.gan.loss == "hinge" and config.model.mlp.g_hidden == (32, 32)


def test_random_search_is_reproducible_from_the_file():
  loaded = sweep.load(os.path.join(REPO, "configs", "sweeps",
                                   "loss_comparison.yaml"), check=False)
  first = [sweep.propose(loaded, [], i).params for i in range(3)]
  again = [sweep.propose(loaded, [], i).params for i in range(3)]
  assert first == again
  assert first[0] != first[1]
  assert isinstance(first[0]["config.seed"], int)
  for params in first:
    assert 1e-5 <= params["config.optim.d_lr"] <= 1e-2


def test_results_are_sorted_by_the_metric(tmp_path):
  def trials():
    return [sweep.Trial("t0", {"config.seed": 0}, "finished", 0,
                        {"eval/reverse_kl": 3.0, "eval/modes": 5.0}),
            sweep.Trial("t1", {"config.seed": 1}, "failed", 1),
            sweep.Trial("t2", {"config.seed": 2}, "finished", 0,
                        {"eval/reverse_kl": 1.0, "eval/modes": 8.0}),
            sweep.Trial("t3", {"config.seed": 3}, "finished", 0,
                        {"eval/reverse_kl": 2.0, "eval/modes": 7.0})]
  path = _tiny(tmp_path, parameters={"config.seed": {"values": [0, 1]}})
  loaded = sweep.load(path, check=False)
  sweep.write_results(loaded, trials(), str(tmp_path))
  rows = list(csv.reader(open(tmp_path / "results.csv")))
  assert rows[0] == ["trial", "seed", "eval/reverse_kl", "status",
                     "eval/modes"]
  assert [r[0] for r in rows[1:]] == ["t2", "t3", "t0", "t1"]
  assert rows[1] == ["t2", "2", "1.0", "finished", "8.0"]
  assert rows[4][3] == "failed (exit 1)"
  md = open(tmp_path / "results.md").read().splitlines()
  assert md[4] == "| trial | seed | eval/reverse_kl | status | eval/modes |"
  assert [line.split("|")[1].strip() for line in md[6:]] == [
      "t2", "t3", "t0", "t1"]
  loaded.spec["metric"]["goal"] = "maximize"
  sweep.write_results(loaded, trials(), str(tmp_path))
  rows = list(csv.reader(open(tmp_path / "results.csv")))
  assert [r[0] for r in rows[1:]] == ["t0", "t3", "t2", "t1"]


def _run_sweep(*args, **kwargs):
  return subprocess.run([sys.executable, "-m", "gen_jax.sweep", *args],
                        capture_output=True, text=True, cwd=REPO,
                        timeout=600, **kwargs)


def test_executor_runs_a_grid_and_a_second_invocation_runs_nothing(tmp_path):
  path = _tiny(tmp_path)
  out = tmp_path / "out"
  # Without WANDB_MODE the executor runs its trials with wandb offline.
  # Without JAX_COMPILATION_CACHE_DIR the trials share DIR/xla_cache.
  env = {k: v for k, v in os.environ.items()
         if k not in ("WANDB_MODE", "JAX_COMPILATION_CACHE_DIR")}
  env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"  # cache even these
  first = _run_sweep(path, f"--workdir={out}", "--workers=2", env=env)
  assert first.returncode == 0, first.stderr
  rows = list(csv.DictReader(open(out / "results.csv")))
  assert [r["status"] for r in rows] == ["finished", "finished"]
  assert sorted(float(r["optim.d_lr"]) for r in rows) == [1e-4, 1e-3]
  kls = [float(r["eval/reverse_kl"]) for r in rows]
  assert kls == sorted(kls)
  for r in rows:
    workdir = out / "runs" / r["trial"]
    summary = json.load(open(workdir / "summary.json"))
    assert summary["eval/reverse_kl"] == float(r["eval/reverse_kl"])
    assert summary["step"] == 4
    config = json.load(open(workdir / "config.json"))
    assert config["optim"]["d_lr"] == float(r["optim.d_lr"])
    run_id = open(workdir / "wandb_id.txt").read()
    run, _ = _wandb_run(str(workdir / "wandb" / f"offline-run-*-{run_id}"))
    assert run.run_group == "tiny"  # offline runs are grouped by sweep
  assert "| trial | optim.d_lr | eval/reverse_kl | status |" in open(
      out / "results.md").read()
  state = json.load(open(out / "sweep.json"))
  assert [t["status"] for t in state["trials"]] == ["finished", "finished"]
  # The trials' compiled programs went to the sweep's shared cache.
  assert any(n.startswith("jit_init") for n in os.listdir(out / "xla_cache"))

  second = _run_sweep(path, f"--workdir={out}", "--workers=2")
  assert second.returncode == 0, second.stderr
  assert json.load(open(out / "sweep.json"))["trials"] == state["trials"]
  for r in rows:  # each trial's command ran once
    log = open(out / "runs" / r["trial"] / "log.txt").read()
    assert log.count("$ ") == 1, log

  # The same directory with another sweep file is refused.
  other = _tiny(tmp_path, parameters={"config.seed": {"values": [0, 1]}},
                filename="other.yaml")
  third = _run_sweep(other, f"--workdir={out}")
  assert third.returncode == 2
  assert "holds a different sweep" in third.stderr


def test_trial_killed_midway_resumes_from_its_checkpoint(tmp_path):
  path = _tiny(tmp_path, parameters={"config.seed": {"values": [3]}}, extra=[
      "--config.train.num_steps=200", "--config.train.log_every=10",
      "--config.train.checkpoint_every=10", "--config.train.eval_every=200"])
  out = tmp_path / "out"
  workdir = out / "runs" / "tiny-000"
  proc = subprocess.Popen(
      [sys.executable, "-m", "gen_jax.sweep", path, f"--workdir={out}"],
      cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
      start_new_session=True)

  def checkpoints():
    d = workdir / "checkpoints"
    return sorted(int(s) for s in os.listdir(d) if s.isdigit()) \
        if d.exists() else []
  deadline = time.time() + 300
  while not checkpoints() and time.time() < deadline:
    time.sleep(0.05)
  os.killpg(proc.pid, signal.SIGKILL)  # the executor and its trial, at once
  proc.wait()
  assert checkpoints(), "no checkpoint within 300 s"
  assert not (workdir / "summary.json").exists(), "finished before the kill"
  assert json.load(open(out / "sweep.json"))["trials"][0]["status"] == \
      "running"
  resumed_from = checkpoints()[-1]
  before = [line for line in open(workdir / "metrics.jsonl")
            if json.loads(line)["step"] <= resumed_from]
  assert before

  again = _run_sweep(path, f"--workdir={out}")
  assert again.returncode == 0, again.stderr
  assert json.load(open(workdir / "summary.json"))["step"] == 200
  lines = open(workdir / "metrics.jsonl").readlines()
  # Records up to the checkpoint are the first run's, byte for byte (a fresh
  # start would have rewritten them with new steps_per_sec values).
  assert lines[:len(before)] == before
  steps = [json.loads(line)["step"] for line in lines
           if "steps_per_sec" in line]
  assert steps == list(range(10, 201, 10))
  assert open(workdir / "log.txt").read().count("$ ") == 2


def _wandb_records(path: str) -> list:
  """The protobuf records of an offline run's .wandb file (leveldb log
  format: 7-byte file header, 32 KiB blocks of checksum/length/type chunks)."""
  from wandb.proto import wandb_internal_pb2 as pb
  raw = open(path, "rb").read()
  assert raw[:4] == b":W&B"
  block, pos, chunks, partial = 32768, 7, [], b""
  while pos + 7 <= len(raw):
    if block - pos % block < 7:  # a block's trailer is zero padding
      pos += block - pos % block
      continue
    length, kind = int.from_bytes(raw[pos + 4:pos + 6], "little"), raw[pos + 6]
    chunk, pos = raw[pos + 7:pos + 7 + length], pos + 7 + length
    if kind == 1:
      chunks.append(chunk)
    elif kind in (2, 3):
      partial = chunk if kind == 2 else partial + chunk
    elif kind == 4:
      chunks.append(partial + chunk)
  records = []
  for chunk in chunks:
    record = pb.Record()
    record.ParseFromString(chunk)
    records.append(record)
  return records


def _wandb_run(pattern: str):
  """The run record of the one offline run matching `pattern`, with the
  config keys it logged as `run.config_keys`."""
  files = glob.glob(os.path.join(pattern, "run-*.wandb"))
  assert len(files) == 1, files
  keys, run = [], None
  for record in _wandb_records(files[0]):
    kind = record.WhichOneof("record_type")
    if kind == "run":
      run = record.run
      keys += [item.key for item in record.run.config.update]
    elif kind == "config":
      keys += [item.key for item in record.config.update]
  return run, set(keys) - {"_wandb"}


def test_run_started_by_wandb_agent_logs_into_its_sweep_run(tmp_path):
  """What `wandb agent` does (wandb_agent.py, Agent._command_run): sets
  WANDB_SWEEP_ID, WANDB_RUN_ID and WANDB_SWEEP_PARAM_PATH (the parameters as
  a config file) and runs the command with `${args}`, without --workdir."""
  from wandb.sdk.launch.sweeps.utils import create_sweep_command_args
  from wandb.sdk.lib import config_util
  params = {"config.gan.loss": {"value": "hinge"},
            "config.optim.d_lr": {"value": 1e-05},
            "config.model.mlp.g_batch_norm": {"value": False}}
  param_path = tmp_path / "wandb" / "sweep-swp1" / "config-run123.yaml"
  config_util.save_config_file_from_dict(str(param_path), params)
  # Not another test's wandb service (WANDB_SERVICE): the agent's own.
  env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
  env.update(WANDB_SWEEP_ID="swp1", WANDB_RUN_ID="run123",
             WANDB_SWEEP_PARAM_PATH=str(param_path), WANDB_DIR=str(tmp_path),
             WANDB_MODE="offline", PYTHONPATH=REPO)
  args = create_sweep_command_args({"args": params})["args"]
  result = subprocess.run(
      [sys.executable, "-m", "gen_jax.main",
       f"--config={REPO}/configs/gan_2d.py:ring,small", *args],
      capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
  assert result.returncode == 0, result.stderr
  workdir = tmp_path / "runs" / "gan_2d-run123"
  default = os.path.join("runs", "gan_2d-run123")
  assert f"no --workdir given: writing to {default}" in result.stderr
  config = json.load(open(workdir / "config.json"))
  assert (config["gan"]["loss"], config["optim"]["d_lr"],
          config["model"]["mlp"]["g_batch_norm"]) == ("hinge", 1e-05, False)
  summary = json.load(open(workdir / "summary.json"))
  assert "eval/reverse_kl" in summary and summary["step"] == 4

  # The agent's run id, so the agent's run.
  assert "wandb could not start" not in result.stderr, result.stderr
  run, keys = _wandb_run(str(workdir / "wandb" / "offline-run-*-run123"))
  assert run.run_id == "run123" and run.sweep_id == "swp1"
  assert set(params) <= keys
  assert "config.train.num_steps" in keys  # our config, flat, same naming
  # One column per field: no `gan.loss` beside the sweep's `config.gan.loss`.
  assert all(k.startswith("config.") for k in keys), sorted(keys)


def test_a_run_under_a_sweep_agent_logs_online(monkeypatch):
  from gen_jax import logger
  from conftest import load_config
  config = load_config("gan_2d", "small")
  config.wandb.mode = "offline"
  monkeypatch.delenv("WANDB_MODE", raising=False)
  monkeypatch.delenv("WANDB_SWEEP_ID", raising=False)
  assert logger.wandb_mode(config) == "offline"
  monkeypatch.setenv("WANDB_SWEEP_ID", "abc")
  assert logger.wandb_mode(config) == "online"
  monkeypatch.setenv("WANDB_MODE", "disabled")
  assert logger.wandb_mode(config) == "disabled"


def test_a_preempted_trial_is_resumed_not_failed(tmp_path):
  # A trial that exits 0 without summary.json saved a checkpoint on SIGTERM:
  # it is reported as interrupted and launched again by the next invocation.
  s = sweep.load(_tiny(tmp_path))
  (tmp_path / "sweep").mkdir()
  executor = sweep.Executor(s, str(tmp_path / "sweep"), None, 1)
  trial = executor._next()
  executor._finish(trial, 0)
  assert trial.status == "interrupted"
  again = sweep.Executor(s, str(tmp_path / "sweep"), None, 1)
  assert [t.status for t in again.trials] == ["pending"]
  executor._finish(trial, 1)
  assert trial.status == "failed"
  assert [t.status for t in sweep.Executor(s, str(tmp_path / "sweep"), None,
                                           1).trials] == ["failed"]
