"""Metrics to `workdir/metrics.jsonl` and to Weights & Biases, on process 0.

wandb runs offline by default with its files inside the workdir
(`workdir/wandb/`); `config.wandb.mode` picks offline/online/disabled and the
environment variable WANDB_MODE wins over it. A run started by `wandb agent`
(WANDB_SWEEP_ID set) logs online, since the sweep needs its metrics. The final
metrics also go to `workdir/summary.json`, which marks a run as finished for
`gen_jax.sweep`. A logging failure never stops training: when online mode
cannot start (no API key, no network; at most `WANDB_INIT_TIMEOUT_S` of
waiting) the run warns once and logs offline (`wandb sync` uploads it later);
other wandb problems turn into one warning and wandb is switched off.
metrics.jsonl is always written (process 0).
"""

import json
import os
import secrets
import string
import sys
from typing import Any

import numpy as np

WANDB_MODES = ("offline", "online", "disabled")
# wandb.init waits up to 90 s by default for a server it cannot reach; the
# environment variable WANDB_INIT_TIMEOUT overrides this.
WANDB_INIT_TIMEOUT_S = 30.0


def flat_config(config) -> dict[str, Any]:
  """{'config.gan.loss': 'hinge', ...}: dotted paths named as the command line
  and sweep files name them, so that a sweep's parameters (wandb.config keys
  like `config.gan.loss`) and our config are one set of columns in wandb."""
  out = {}

  def walk(prefix, node):
    for k, v in node.items():
      path = f"{prefix}{k}"
      if hasattr(v, "items"):
        walk(path + ".", v)
      else:
        out[path] = list(v) if isinstance(v, tuple) else v
  walk("config.", config)
  return out


def _jsonable(v):
  if isinstance(v, (np.generic, np.ndarray)):
    return v.item() if np.ndim(v) == 0 else v.tolist()
  return v


def _truncate_after(path: str, step: int) -> None:
  if not os.path.exists(path):
    return
  with open(path) as f:
    lines = f.readlines()
  keep = []
  for line in lines:
    try:
      if json.loads(line)["step"] <= step:
        keep.append(line)
    except (ValueError, KeyError, TypeError):
      pass  # a line cut short by a kill
  if len(keep) != len(lines):
    with open(path + ".tmp", "w") as f:
      f.writelines(keep)
    os.replace(path + ".tmp", path)


def _describe(e: Exception) -> str:
  lines = str(e).strip().splitlines()
  return f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__


def wandb_mode(config) -> str:
  if os.environ.get("WANDB_MODE"):
    return os.environ["WANDB_MODE"]
  return "online" if os.environ.get("WANDB_SWEEP_ID") else config.wandb.mode


def write_json(path: str, obj: dict[str, Any]) -> None:
  """Writes `obj` to `path` atomically (a reader sees all of it or nothing)."""
  with open(path + ".tmp", "w") as f:
    json.dump(obj, f, indent=2, sort_keys=True)
  os.replace(path + ".tmp", path)


def _new_run_id() -> str:
  """A wandb-style run id: 8 lowercase letters and digits."""
  alphabet = string.ascii_lowercase + string.digits
  return "".join(secrets.choice(alphabet) for _ in range(8))


class MetricLogger:
  """Writes one JSON object per `write` call; images to PNG files and wandb."""

  def __init__(self, workdir: str, config, is_main: bool, start_step: int = 0):
    """`start_step`: the step the run starts or resumes from; records of
    later steps (written after the checkpoint it resumes from) are dropped, so
    that metrics.jsonl reads as if the run had never been interrupted."""
    self.workdir = workdir
    self.is_main = is_main
    self._wandb = None
    if not is_main:
      return
    path = os.path.join(workdir, "metrics.jsonl")
    _truncate_after(path, start_step)
    self._file = open(path, "a")
    mode = wandb_mode(config)
    if mode != "disabled":
      self._wandb = self._start_wandb(config, mode)

  def _start_wandb(self, config, mode):
    try:
      import wandb
      id_file = os.path.join(self.workdir, "wandb_id.txt")
      if os.path.exists(id_file):
        run_id = open(id_file).read().strip()
      else:
        run_id = os.environ.get("WANDB_RUN_ID") or _new_run_id()
        with open(id_file, "w") as f:
          f.write(run_id)
      w = config.wandb
      timeout = float(os.environ.get("WANDB_INIT_TIMEOUT",
                                     WANDB_INIT_TIMEOUT_S))
      init = lambda mode: wandb.init(
          project=w.project, entity=w.entity or None,
          name=w.name or os.path.basename(os.path.abspath(self.workdir)),
          group=w.group or None, tags=list(w.tags) or None,
          # Absolute: a shared wandb service resolves paths in its own cwd.
          dir=os.path.abspath(self.workdir), id=run_id, resume="allow",
          mode=mode,
          config=flat_config(config), settings=wandb.Settings(
              silent=True, console="off", init_timeout=timeout))
      if mode != "online":
        return init(mode)
      try:
        return init("online")
      except Exception as e:  # noqa: BLE001 -- no key, no network, ...
        print(f"warning: wandb could not go online ({_describe(e)}); logging "
              f"offline to {self.workdir}/wandb (upload later with `wandb "
              "sync`)", file=sys.stderr)
        wandb.teardown()  # else the failed attempt still holds the run id
        return init("offline")
    except Exception as e:  # noqa: BLE001 -- logging must never stop training
      print(f"warning: wandb could not start ({_describe(e)}); continuing "
            "with metrics.jsonl only", file=sys.stderr)
      return None

  def write(self, step: int, metrics: dict[str, Any]) -> None:
    if not self.is_main:
      return
    record = {"step": int(step), **{k: _jsonable(v) for k, v in
                                    metrics.items()}}
    self._file.write(json.dumps(record) + "\n")
    self._file.flush()
    if self._wandb is not None:
      self._wandb_call(lambda: self._wandb.log(metrics, step=step))

  def images(self, step: int, images: dict[str, np.ndarray]) -> None:
    if self._wandb is None:
      return
    import wandb
    self._wandb_call(lambda: self._wandb.log(
        {k: wandb.Image(v) for k, v in images.items()}, step=step))

  def summary(self, metrics: dict[str, Any]) -> None:
    """The run's final metrics: wandb's summary and `workdir/summary.json`."""
    if not self.is_main:
      return
    write_json(os.path.join(self.workdir, "summary.json"),
               {k: _jsonable(v) for k, v in metrics.items()})
    if self._wandb is not None:
      self._wandb_call(lambda: self._wandb.summary.update(
          {k: _jsonable(v) for k, v in metrics.items()}))

  def _wandb_call(self, fn) -> None:
    try:
      fn()
    except Exception as e:  # noqa: BLE001
      print(f"warning: wandb logging failed ({type(e).__name__}); "
            "continuing with metrics.jsonl only", file=sys.stderr)
      self._wandb = None

  def close(self) -> None:
    if not self.is_main:
      return
    self._file.close()
    if self._wandb is not None:
      self._wandb_call(self._wandb.finish)
