"""The workdir: usable before anything is compiled, resumed with its own config.

`check` runs before the dataset or model is built and writes nothing: it stops
with one line when the workdir is a file, is not writable, or holds
checkpoints of a run started with a config that differs in a field outside
`config_lib.CHANGEABLE_ON_RESUME`; a field gen_jax gained after the run
started (absent from its config.json) is accepted at its default value,
which is the behaviour the run had. `prepare` checks free disk space against
the size of a checkpoint and records the config in `config.json` (atomically:
written to a tmp file, then renamed).
"""

import json
import os
import shutil
import sys
import tempfile

import jax

from gen_jax import checkpoint, config_lib
from gen_jax.errors import UserError

CONFIG_FILE = "config.json"
ABSENT = "(absent)"
# Room for metrics, samples and wandb files besides the checkpoints.
MIN_FREE_BYTES = 64 << 20


def checkpoint_dir(workdir: str) -> str:
  return os.path.join(workdir, "checkpoints")


def _flat(node, prefix: str = "") -> dict:
  out = {}
  for k, v in node.items():
    if isinstance(v, dict):
      out.update(_flat(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def _as_json(config) -> dict:
  return json.loads(config.to_json_best_effort())


def changeable(field: str) -> bool:
  return any(field == p or p.endswith(".*") and field.startswith(p[:-1])
             for p in config_lib.CHANGEABLE_ON_RESUME)


def config_changes(saved: dict, current: dict) -> list[tuple[str, str, str]]:
  """(field, old, new) for every field that differs, JSON-formatted values;
  a field missing on one side shows as ABSENT."""
  saved, current = _flat(saved), _flat(current)
  show = lambda d, k: json.dumps(d[k]) if k in d else ABSENT
  return [(k, show(saved, k), show(current, k))
          for k in sorted(set(saved) | set(current))
          if saved.get(k, KeyError) != current.get(k, KeyError)]


def _fail(workdir: str, problem: str, e: OSError | None = None) -> None:
  detail = f" ({e.strerror or e})" if e is not None else ""
  raise UserError(f"workdir {workdir!r} {problem}{detail}")


def check(workdir: str, config) -> None:
  """Stops with one line if the workdir cannot be used or resumed with
  `config`; creates the workdir if needed, writes nothing else."""
  create(workdir)
  if checkpoint.saved_steps(checkpoint_dir(workdir)):
    _check_same_config(workdir, config)


def create(workdir: str) -> None:
  """Creates the workdir if needed; stops with one line if it is a file,
  cannot be created or is not writable."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    _fail(workdir, "is a file, not a directory")
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as e:  # e.g. a file where a parent directory should be
    _fail(workdir, "cannot be created", e)
  try:
    fd, probe = tempfile.mkstemp(prefix=".write_test", dir=workdir)
    os.close(fd)
    os.remove(probe)
  except OSError as e:
    _fail(workdir, "is not writable", e)


def _check_same_config(workdir: str, config) -> None:
  path = os.path.join(workdir, CONFIG_FILE)
  try:
    with open(path) as f:
      saved = json.load(f)
  except FileNotFoundError:
    return  # started before config.json existed: nothing to compare with
  except (OSError, ValueError) as e:
    raise UserError(f"cannot read {path} to check the config of the run to "
                    f"resume ({e}); restore it, or use a new --workdir") from e
  changes = config_changes(saved, _as_json(config))
  defaults = _defaults(config)
  added = [c for c in changes if c[1] == ABSENT and c[0] in defaults
           and c[2] == json.dumps(defaults[c[0]])]
  science = [c for c in changes if not changeable(c[0]) and c not in added]
  if science:
    listed = "; ".join(f"{k}: {old} -> {new}" for k, old, new in science)
    raise UserError(
        f"workdir {workdir!r} holds a run started with a different config "
        f"(its {CONFIG_FILE}): {listed}. Only "
        f"{', '.join(config_lib.CHANGEABLE_ON_RESUME)} may change when "
        "resuming; use a new --workdir for a new experiment")
  changed = [c for c in changes if c not in added]
  if jax.process_index() == 0:
    if changed:
      listed = "; ".join(f"{k}: {old} -> {new}" for k, old, new in changed)
      print(f"resuming with changed settings: {listed}", file=sys.stderr)
    if added:
      listed = ", ".join(f"{k}={new}" for k, _, new in added)
      print(f"resuming a run started before these fields existed, at their "
            f"defaults: {listed}", file=sys.stderr)


def _defaults(config) -> dict:
  """Every field's default for this trainer, dataset and architecture
  (config_lib.base and the trainer's model_config), flattened."""
  from gen_jax import trainers
  out = _flat(_as_json(config_lib.base(config.trainer, config.data.name)))
  model_config = trainers.TRAINERS.get(config.trainer).model_config
  if model_config is not None and "arch" in config.get("model", {}):
    out = {k: v for k, v in out.items() if not k.startswith("model.")}
    out.update(_flat(_as_json(model_config(config.model.arch)), "model."))
  return out


def prepare(workdir: str, config, checkpoint_bytes: int) -> None:
  """Checks free space for two checkpoints of `checkpoint_bytes` (one being
  written while the last is kept), creates `samples/`, writes config.json for
  a run that starts from scratch (a resumed run keeps its original one)."""
  need = 2 * checkpoint_bytes + MIN_FREE_BYTES
  free = shutil.disk_usage(workdir).free
  if free < need:
    raise UserError(f"workdir {workdir!r} has {free / 2**20:.0f} MiB free; "
                    f"this run needs at least {need / 2**20:.0f} MiB (two "
                    f"checkpoints of {checkpoint_bytes / 2**20:.1f} MiB and "
                    "room for metrics and samples)")
  try:
    os.makedirs(os.path.join(workdir, "samples"), exist_ok=True)
    path = os.path.join(workdir, CONFIG_FILE)
    fresh = not checkpoint.saved_steps(checkpoint_dir(workdir))
    if jax.process_index() == 0 and (fresh or not os.path.exists(path)):
      tmp = f"{path}.tmp{os.getpid()}"
      with open(tmp, "w") as f:
        f.write(config.to_json_best_effort(indent=2, sort_keys=True))
        f.flush()
        os.fsync(f.fileno())
      os.replace(tmp, path)
  except OSError as e:
    _fail(workdir, "is not usable", e)
