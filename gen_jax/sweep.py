r"""Runs a W&B sweep file without a W&B server.

  python -m gen_jax.sweep configs/sweeps/loss_comparison.yaml --workdir=DIR \
      [--max_runs=N] [--workers=K] [--retry_failed]

The same YAML works with `wandb sweep` + `wandb agent`. Here the official
sweeps engine (`sweeps.next_run`: grid, random, bayes) proposes each trial's
parameters, fed with the finished trials' summary metrics; each trial runs as
its own process, the sweep file's `command` with `${args}` expanded exactly as
`wandb agent` expands it (`--config.gan.loss=hinge ...`) plus
`--workdir=DIR/runs/NAME`, with WANDB_MODE=offline unless set. Outputs:

  DIR/sweep.json     the executor's state (written atomically after each change)
  DIR/runs/NAME/     each trial's workdir; `log.txt` holds its output
  DIR/results.csv    one row per trial, best first: parameters, metric, status
  DIR/results.md     the same as a Markdown table
  DIR/xla_cache/     JAX's persistent compilation cache, shared by the trials
                     (unless JAX_COMPILATION_CACHE_DIR is set)

Running the same command again resumes: trials with `summary.json` are done;
trials that were running when the executor stopped are started again with the
same command in the same workdir, so they resume from their checkpoints; failed
trials stay failed unless `--retry_failed`. A trial whose workdir another
process still owns (a trial left running by an executor that was killed) is not
started twice: the executor says so in a line and waits for that process to end
(it holds one of the `--workers` slots meanwhile), then counts the trial
finished if it wrote `summary.json`, else starts it to resume. Random search is
seeded per trial from the sweep file, so a rerun proposes the same parameters.
"""

import argparse
import csv
import dataclasses
import hashlib
import io
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import time
from typing import Any

import warnings

import yaml

from gen_jax import workdir_lock
from gen_jax.errors import UserError
from gen_jax.logger import write_json

METHODS = ("grid", "random", "bayes")
STATE_FILE = "sweep.json"
# Trial-specific variables of a `wandb agent` environment: a trial must not
# pick up the run id or sweep of an agent that started the executor.
_AGENT_ENV = ("WANDB_RUN_ID", "WANDB_SWEEP_ID", "WANDB_SWEEP_PARAM_PATH")


@dataclasses.dataclass
class Sweep:
  """A validated sweep file."""
  path: str
  spec: dict[str, Any]          # the parsed YAML, as the sweeps engine takes it
  name: str
  command: list[str]            # with ${interpreter}/${env}/${envvar:X} filled
  config_args: list[str]        # the command's --config=... and --config.X=...

  @property
  def method(self) -> str:
    return self.spec["method"]

  @property
  def metric(self) -> str | None:
    return self.spec.get("metric", {}).get("name")

  @property
  def goal(self) -> str:
    return self.spec.get("metric", {}).get("goal", "minimize")

  @property
  def digest(self) -> str:
    text = json.dumps(self.spec, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _sweeps():
  """The sweeps package (its pydantic-v1 style config warns on import)."""
  with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Valid config keys have changed")
    warnings.filterwarnings("ignore", message="Support for class-based")
    import sweeps
  return sweeps


def args_for(params: dict[str, Any]) -> list[str]:
  """`${args}` as `wandb agent` writes it: `--NAME=str(value)` per parameter
  (wandb.sdk.launch.sweeps.utils.create_sweep_command_args)."""
  return [f"--{k}={v}" for k, v in params.items()]


def _fail(path: str, message: str):
  raise UserError(f"{path}: {message}")


def _command(path: str, spec: dict) -> list[str]:
  """The command with every macro but `${args}` filled in."""
  if "command" not in spec:
    _fail(path, "no `command`: give one that runs `${interpreter} -m "
          "gen_jax.main --config=configs/NAME.py:ARG ${args}`")
  out = []
  for part in map(str, spec["command"]):
    if part == "${env}":
      continue  # wandb prepends /usr/bin/env; the environment is passed as is
    if part == "${interpreter}":
      out.append(sys.executable)
    elif part == "${program}":
      if "program" not in spec:
        _fail(path, "the command uses ${program} but there is no `program`")
      out.append(spec["program"])
    elif part == "${args}":
      out.append(part)
    elif re.fullmatch(r"\$\{[a-z_]+\}", part):
      _fail(path, f"the command's {part} is not supported here (use ${{args}})")
    else:
      out.append(re.sub(r"\$\{envvar:([A-Z0-9_]*)\}",
                        lambda m: os.environ.get(m.group(1), m.group(1)), part))
  if out.count("${args}") != 1:
    _fail(path, "the command must contain ${args} once")
  return out


def _load_config(config_args: list[str]):
  """The config that `gen_jax.main` builds from these arguments, parsed by the
  same absl/config_flags code (so that `--config.x=1e-4` etc. parse alike)."""
  from absl import flags
  from ml_collections import config_flags
  argv = ["gen_jax.main", *config_args]
  values = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, "", flag_values=values,
                                  lock_config=True, sys_argv=argv)
  try:
    with warnings.catch_warnings():  # config_flags uses load_module()
      warnings.filterwarnings("ignore", message=".*load_module")
      values(argv)
      config = values.config
      config.keys()  # config_flags defers a load failure to the first use
  except UserError:
    raise
  except Exception as e:  # noqa: BLE001 -- absl, config_flags and OSError
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    raise UserError(lines[-1] if lines else type(e).__name__) from e
  return config


def _field(config, name: str, config_arg: str):
  """(parent ConfigDict, key) of the parameter `config.a.b`, or UserError."""
  if not name.startswith("config."):
    raise UserError(f"parameter {name} is not a config field: name parameters "
                    "by their config path, e.g. config.gan.loss")
  node, walked = config, "config"
  parts = name.split(".")[1:]
  for i, part in enumerate(parts):
    if not hasattr(node, "keys") or part not in node:
      known = ", ".join(sorted(node.keys())) if hasattr(node, "keys") else ""
      raise UserError(f"parameter {name} is not a field of {config_arg}: "
                      f"{walked} has no field {part!r}"
                      + (f" (it has: {known})" if known else ""))
    if i < len(parts) - 1:
      node, walked = node[part], f"{walked}.{part}"
  return node, parts[-1]


def parameter_values(name: str, spec: dict) -> list[Any]:
  """Values a parameter can take, as the sweeps engine produces them: every
  categorical value, else the ends and middle of its distribution."""
  _sweeps()
  from sweeps.params import HyperParameter
  try:
    param = HyperParameter(name, spec)
  except Exception as e:  # noqa: BLE001 -- ParamValidationError and friends
    raise UserError(f"parameter {name}: {str(e).splitlines()[0]}") from e
  if "values" in param.config:
    values = list(param.config["values"])
  elif param.type == HyperParameter.CONSTANT:
    values = [param.config["value"]]
  else:
    values = [param.ppf(q) for q in (1e-6, 0.5, 1 - 1e-6)]
  return [_plain(v) for v in values]


def _plain(value):
  """numpy scalars (from the engine's samplers) as Python numbers."""
  return value.item() if hasattr(value, "item") and not isinstance(
      value, (list, tuple, dict, str)) else value


def check_parameter(sweep: Sweep, name: str, spec: dict,
                    validate: bool = True) -> None:
  """Raises UserError unless every value of the parameter fits its config
  field: the field exists, the YAML value has the field's type (ConfigDict's
  own type check; an int is no bool), `gen_jax.main` parses `--NAME=VALUE`
  and, if `validate`, config_lib.validate accepts the result."""
  from gen_jax import config_lib
  if "parameters" in spec:
    raise UserError(f"parameter {name}: nested parameters are not supported; "
                    "name each field by its full path")
  config_arg = sweep.config_args[0].split("=", 1)[1]
  base = _load_config(sweep.config_args)
  parent, key = _field(base, name, config_arg)
  if hasattr(parent[key], "keys"):
    raise UserError(f"parameter {name} names a group of fields, not a field")
  for value in parameter_values(name, spec):
    current = parent[key]
    try:
      if isinstance(value, bool) != isinstance(current, bool):
        raise TypeError
      parent[key] = value
      parent[key] = current
    except TypeError:
      hint = ""
      if isinstance(value, str) and re.fullmatch(r"[-+]?[\d.]+e[-+]?\d+",
                                                 value):
        hint = (" (YAML reads 1e-4 as a string: write 1.0e-4)")
      raise UserError(f"parameter {name}: value {value!r} "
                      f"({type(value).__name__}) does not fit the field's type "
                      f"{type(current).__name__}{hint}") from None
    try:
      config = _load_config(sweep.config_args + args_for({name: value}))
      if validate:
        config_lib.validate(config)
    except UserError as e:
      raise UserError(f"parameter {name}={value!r}: {e}") from None


def load(path: str, check: bool = True) -> Sweep:
  """Reads a sweep file; raises UserError with one line. Checks the schema
  and command, and if `check` the command's config and every parameter
  (`check_parameter`)."""
  sweeps = _sweeps()
  try:
    with open(path) as f:
      spec = yaml.safe_load(f)
  except OSError as e:
    raise UserError(f"cannot read sweep file {path}: {e.strerror}") from e
  except yaml.YAMLError as e:
    _fail(path, f"not valid YAML: {str(e).splitlines()[0]}")
  if not isinstance(spec, dict):
    _fail(path, "a sweep file is a YAML mapping (method, metric, parameters, "
          "command)")
  try:
    problems = sweeps.schema_violations_from_proposed_config(spec)
  except ValueError as e:
    problems = [str(e)]
  if problems:
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    _fail(path, f"{problems[0].splitlines()[0]}{more}")
  if spec["method"] not in METHODS:
    _fail(path, f"method {spec['method']!r} is not one of: "
          f"{', '.join(METHODS)}")
  if spec["method"] == "bayes" and "metric" not in spec:
    _fail(path, "a bayes sweep needs a `metric`")
  command = _command(path, spec)
  config_args = [a for a in command if a.startswith("--config=")
                 or a.startswith("--config.")]
  if not config_args or not config_args[0].startswith("--config="):
    _fail(path, "the command must give --config=configs/NAME.py:ARG before "
          "any --config.FIELD=VALUE")
  name = str(spec.get("name") or os.path.splitext(os.path.basename(path))[0])
  sweep = Sweep(path=path, spec=spec, name=re.sub(r"[^\w.-]", "_", name),
                command=command, config_args=config_args)
  if not check:
    return sweep
  try:
    from gen_jax import config_lib
    config_lib.validate(_load_config(config_args))
    for param, param_spec in spec["parameters"].items():
      check_parameter(sweep, param, param_spec)
  except UserError as e:
    _fail(path, str(e))
  return sweep


# ---------------------------------------------------------------- executor


@dataclasses.dataclass
class Trial:
  name: str
  params: dict[str, Any]
  status: str = "pending"  # pending, running, interrupted, finished, failed
  returncode: int | None = None
  summary: dict[str, Any] = dataclasses.field(default_factory=dict)


def grid_size(sweep: Sweep) -> int:
  runs = _sweeps().next_runs(sweep.spec, [], n=10**6)
  return sum(r is not None for r in runs)


def propose(sweep: Sweep, trials: list[Trial], index: int) -> Trial | None:
  """The engine's next trial given `trials`, or None when a grid is done.

  The engine's random draws are seeded from the sweep file and the trial
  index, so that the same file proposes the same trials."""
  import numpy as np
  sweeps = _sweeps()
  runs = [sweeps.SweepRun(
      name=t.name, config={k: {"value": v} for k, v in t.params.items()},
      state={"finished": "finished", "failed": "failed"}.get(
          t.status, "running"),
      summaryMetrics={k: v for k, v in t.summary.items()
                      if isinstance(v, (int, float))}) for t in trials]
  seed = int(hashlib.sha256(f"{sweep.digest}:{index}".encode()).hexdigest()
             [:8], 16)
  py_state, np_state = random.getstate(), np.random.get_state()
  random.seed(seed)
  np.random.seed(seed)
  try:
    run = sweeps.next_run(sweep.spec, runs)
  finally:
    random.setstate(py_state)
    np.random.set_state(np_state)
  if run is None:
    return None
  params = {k: _plain(v["value"]) for k, v in run.config.items()}
  return Trial(name=f"{sweep.name}-{index:03d}", params=params)


def trial_command(sweep: Sweep, trial: Trial, workdir: str) -> list[str]:
  i = sweep.command.index("${args}")
  return (sweep.command[:i] + args_for(trial.params) + sweep.command[i + 1:]
          + [f"--workdir={workdir}"])


def _metric(sweep: Sweep, trial: Trial) -> float | None:
  value = trial.summary.get(sweep.metric) if sweep.metric else None
  return float(value) if isinstance(value, (int, float)) else None


def sorted_trials(sweep: Sweep, trials: list[Trial]) -> list[Trial]:
  """Trials with a finite metric, best first; then the rest by name."""
  def key(t):
    m = _metric(sweep, t)
    if m is None or not math.isfinite(m):
      return (1, 0.0, t.name)
    return (0, m if sweep.goal == "minimize" else -m, t.name)
  return sorted(trials, key=key)


def write_results(sweep: Sweep, trials: list[Trial], directory: str) -> None:
  """results.csv and results.md: one row per trial, best first."""
  params = list(sweep.spec["parameters"])
  metric = sweep.metric
  others = sorted({k for t in trials for k in t.summary
                   if k.startswith("eval/") and k != metric})
  header = (["trial", *(p.removeprefix("config.") for p in params)]
            + ([metric] if metric else []) + ["status", *others])
  rows = []
  for t in sorted_trials(sweep, trials):
    rows.append([t.name, *(t.params.get(p, "") for p in params)]
                + ([t.summary.get(metric, "")] if metric else [])
                + [t.status if t.returncode in (None, 0)
                   else f"{t.status} (exit {t.returncode})"]
                + [t.summary.get(k, "") for k in others])
  text = io.StringIO()
  csv.writer(text, lineterminator="\n").writerows([header, *rows])
  _write(os.path.join(directory, "results.csv"), text.getvalue())

  def cell(v):
    return f"{v:.4g}" if isinstance(v, float) else str(v)
  goal = f", {sweep.goal} {metric}" if metric else ""
  lines = [f"# {sweep.name}: {len(trials)} trials{goal}", "",
           f"`{sweep.path}`, method {sweep.method}; trial workdirs in `runs/`.",
           "", "| " + " | ".join(header) + " |",
           "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
  _write(os.path.join(directory, "results.md"), "\n".join(lines) + "\n")


def _write(path: str, text: str) -> None:
  with open(path + ".tmp", "w") as f:
    f.write(text)
  os.replace(path + ".tmp", path)


class _Owned:
  """A trial whose workdir another process owns, as a Popen-like handle:
  `poll()` is None until that process releases the workdir."""

  returncode = 0
  every = 2.0  # seconds between looks at the workdir's lock

  def __init__(self, workdir: str):
    self.workdir = workdir
    self._next = 0.0

  def poll(self) -> int | None:
    if time.time() < self._next:
      return None
    self._next = time.time() + self.every
    return None if workdir_lock.holder(self.workdir) is not None else 0

  def terminate(self) -> None:
    pass  # not ours to stop

  def wait(self) -> int:
    return 0


class _Terminated(Exception):
  pass


def _raise_terminated(signum, frame):
  del signum, frame
  raise _Terminated


class Executor:
  """Runs a sweep's trials, `workers` at a time, in `directory`."""

  def __init__(self, sweep: Sweep, directory: str, max_runs: int | None,
               workers: int, retry_failed: bool = False):
    self.sweep = sweep
    self.directory = os.path.abspath(directory)
    self.max_runs = max_runs
    self.workers = workers
    self.state_path = os.path.join(self.directory, STATE_FILE)
    self.trials = self._load_state()
    for t in self.trials:
      if t.status == "running" and os.path.exists(self._summary(t)):
        self._finish(t, 0, save=False)  # finished as the executor stopped
      elif t.status in ("running", "interrupted") or (
          retry_failed and t.status == "failed"):
        t.status, t.returncode = "pending", None  # resumes from its checkpoint
    self.total = (min(grid_size(sweep), max_runs or 10**9)
                  if sweep.method == "grid" else max_runs)

  def _load_state(self) -> list[Trial]:
    if not os.path.exists(self.state_path):
      return []
    with open(self.state_path) as f:
      state = json.load(f)
    if state["digest"] != self.sweep.digest:
      raise UserError(f"{self.directory} holds a different sweep "
                      f"({state['path']}); use a new --workdir")
    return [Trial(**t) for t in state["trials"]]

  def _save(self) -> None:
    write_json(self.state_path, {
        "path": self.sweep.path, "digest": self.sweep.digest,
        "spec": self.sweep.spec,
        "trials": [dataclasses.asdict(t) for t in self.trials]})
    write_results(self.sweep, self.trials, self.directory)

  def _workdir(self, trial: Trial) -> str:
    return os.path.join(self.directory, "runs", trial.name)

  def _launch(self, trial: Trial) -> subprocess.Popen | _Owned:
    workdir = self._workdir(trial)
    owner = workdir_lock.holder(workdir)
    if owner is not None:  # e.g. left running by an executor that was killed
      from tqdm import tqdm
      tqdm.write(f"{trial.name}: its workdir is in use by "
                 f"{workdir_lock.describe(owner)}; waiting for it to end",
                 file=sys.stderr)
      trial.status, trial.returncode = "running", None
      self._save()
      return _Owned(workdir)
    os.makedirs(workdir, exist_ok=True)
    command = trial_command(self.sweep, trial, workdir)
    env = {k: v for k, v in os.environ.items() if k not in _AGENT_ENV}
    env.setdefault("WANDB_MODE", "offline")
    env.setdefault("WANDB_RUN_GROUP", self.sweep.name)  # one group per sweep
    # Trials share compiled programs through JAX's persistent cache: a
    # resumed trial, and trials differing only in what the program does
    # not bake in (seed, data), skip compiling (BENCHMARKS.md, "The whole
    # loop").
    env.setdefault("JAX_COMPILATION_CACHE_DIR",
                   os.path.join(self.directory, "xla_cache"))
    if self.workers > 1:  # several JAX processes share each accelerator
      env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    log = open(os.path.join(workdir, "log.txt"), "a")
    log.write(f"$ {' '.join(command)}\n")
    log.flush()
    trial.status, trial.returncode = "running", None
    self._save()
    with log:
      return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                              env=env)

  def _summary(self, trial: Trial) -> str:
    return os.path.join(self._workdir(trial), "summary.json")

  def _finish(self, trial: Trial, returncode: int, save: bool = True) -> None:
    """A trial with summary.json is finished (the training loop writes it
    last, after the final evaluation); one that exited 0 without it was
    preempted (it saved a checkpoint) and resumes on the next invocation;
    otherwise it failed."""
    trial.returncode = returncode
    if os.path.exists(self._summary(trial)):
      with open(self._summary(trial)) as f:
        trial.summary = json.load(f)
      trial.status = "finished"
    elif returncode == 0:
      trial.status = "interrupted"
    else:
      trial.status = "failed"
    if save:
      self._save()

  def _next(self) -> Trial | None:
    pending = [t for t in self.trials if t.status == "pending"]
    if pending:
      return pending[0]
    if self.max_runs is not None and len(self.trials) >= self.max_runs:
      return None
    trial = propose(self.sweep, self.trials, len(self.trials))
    if trial is not None:
      self.trials.append(trial)
    return trial

  def run(self) -> list[Trial]:
    from tqdm import tqdm
    os.makedirs(self.directory, exist_ok=True)
    done = sum(t.status in ("finished", "failed", "interrupted")
               for t in self.trials)
    bar = tqdm(total=self.total, initial=done, desc=self.sweep.name,
               unit="trial", dynamic_ncols=True)
    active: dict[str, tuple[Trial, subprocess.Popen]] = {}
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    self._save()
    try:
      while True:
        while len(active) < self.workers:
          trial = self._next()
          if trial is None:
            break
          active[trial.name] = (trial, self._launch(trial))
        if not active:
          break
        time.sleep(0.2)
        for name, (trial, proc) in list(active.items()):
          if proc.poll() is not None:
            del active[name]
            if isinstance(proc, _Owned) and not os.path.exists(
                self._summary(trial)):
              trial.status = "pending"  # its owner stopped early: resume it
              continue
            self._finish(trial, proc.returncode)
            bar.update(1)
            best = sorted_trials(self.sweep, self.trials)[0]
            if _metric(self.sweep, best) is not None:
              bar.set_postfix_str(f"best {self.sweep.metric} "
                                  f"{_metric(self.sweep, best):.4g} "
                                  f"({best.name})")
    except (KeyboardInterrupt, _Terminated) as e:
      # Ctrl-C reached the trials too; a SIGTERM (a scheduler stopping the
      # job) is passed on. They stay `running` in the state file and resume
      # from their checkpoints on the next invocation.
      for _, proc in active.values():
        if isinstance(e, _Terminated):
          proc.terminate()
        proc.wait()
      raise KeyboardInterrupt from None
    finally:
      signal.signal(signal.SIGTERM, previous)
      bar.close()
    return self.trials


def _parser() -> argparse.ArgumentParser:
  class Parser(argparse.ArgumentParser):
    def error(self, message):
      raise UserError(message)
  p = Parser(prog="python -m gen_jax.sweep",
             description="Run a W&B sweep file offline.")
  p.add_argument("sweep_file")
  p.add_argument("--workdir", required=True,
                 help="directory for the state, the results and runs/")
  p.add_argument("--max_runs", type=int, default=None,
                 help="most trials in all (required for random and bayes)")
  p.add_argument("--workers", type=int, default=1,
                 help="trials run in parallel")
  p.add_argument("--retry_failed", action="store_true",
                 help="run failed trials again")
  return p


def main(argv: list[str] | None = None) -> int:
  try:
    args = _parser().parse_args(argv)
    if args.workers < 1 or (args.max_runs is not None and args.max_runs < 1):
      raise UserError("--workers and --max_runs must be positive")
    sweep = load(args.sweep_file)
    if sweep.method != "grid" and args.max_runs is None:
      raise UserError(f"{sweep.path}: a {sweep.method} sweep never ends by "
                      "itself: give --max_runs")
    executor = Executor(sweep, args.workdir, args.max_runs, args.workers,
                        args.retry_failed)
    trials = executor.run()
  except UserError as e:
    print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
    return e.exit_code
  except KeyboardInterrupt:
    print("interrupted: run the same command again to resume",
          file=sys.stderr)
    return 130
  failed = [t.name for t in trials if t.status == "failed"]
  interrupted = [t.name for t in trials if t.status == "interrupted"]
  results = os.path.join(executor.directory, "results.md")
  print(f"{len(trials)} trials, {len(failed)} failed; results: {results}")
  if interrupted:
    print(f"preempted: {', '.join(interrupted)}: run the same command again "
          "to resume them", file=sys.stderr)
  if failed:
    print(f"failed: {', '.join(failed)} (logs: "
          f"{os.path.join(executor.directory, 'runs', 'NAME', 'log.txt')})",
          file=sys.stderr)
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
