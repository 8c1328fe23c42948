"""Command line: `python -m gen_jax.main --config=configs/NAME.py:ARG --workdir=DIR`.

Override any config field with `--config.FIELD=VALUE` (e.g.
`--config.train.num_steps=3000 --config.gan.loss=hinge`). Running the same
command again in the same workdir resumes from its latest checkpoint. Bad input
is reported in one line on stderr with exit code 2 (3 when training diverged).
SIGTERM or Ctrl-C saves a checkpoint and exits with status 0.
"""

import datetime
import importlib.util
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from gen_jax.errors import Preempted, UserError

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    "config", None, "Config file and argument, e.g. configs/dcgan.py:digits.",
    lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and "
                    "samples. Default: runs/<config>-<wandb run id or time>.")
flags.DEFINE_string("coordinator_address", None,
                    "host:port of process 0, for multi-process runs.")
flags.DEFINE_integer("num_processes", None, "Number of processes.")
flags.DEFINE_integer("process_id", None, "This process's index.")


def _fail(message: str, code: int = 2):
  print(f"error: {message}", file=sys.stderr)
  sys.exit(code)


def _unknown_override(argv: list[str]) -> str | None:
  """Names the first `--config.PATH` override that the config lacks."""
  config_arg = next((a.split("=", 1)[1] for a in argv
                     if a.startswith("--config=")), None)
  if config_arg is None:
    return None
  path, _, arg = config_arg.partition(":")
  spec = importlib.util.spec_from_file_location("gen_jax_user_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(arg or None)
  for a in argv:
    if not a.startswith("--config."):
      continue
    field = a[len("--config."):].split("=", 1)[0]
    node, walked = config, "config"
    for part in field.split("."):
      if not hasattr(node, "keys") or part not in node:
        known = ", ".join(sorted(node.keys())) if hasattr(node, "keys") else ""
        return (f"unknown config field config.{field}: {walked} has no field "
                f"{part!r}" + (f" (it has: {known})" if known else ""))
      node, walked = node[part], f"{walked}.{part}"
  return None


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's parser, with one-line errors instead of usage dumps."""
  try:
    argv = FLAGS(argv)
  except flags.Error as e:
    _fail(str(e).splitlines()[0])
  except UserError as e:  # raised by a config file's get_config
    _fail(str(e), e.exit_code)
  except (ValueError, TypeError, KeyError, AttributeError) as e:
    try:
      message = _unknown_override(argv)
    except Exception:  # noqa: BLE001 -- fall back to the parser's message
      message = None
    _fail(message or f"bad --config override: {str(e).splitlines()[0]}")
  try:  # config_flags defers a load failure to the first use
    if FLAGS.config is not None:
      FLAGS.config.keys()
  except OSError as e:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    _fail(f"cannot load --config: {lines[-1] if lines else e}")
  return argv


def default_workdir(config_path: str) -> str:
  """runs/<config name>-<W&B run id, or the time>, for runs started without
  --workdir (as a W&B sweep agent may start them)."""
  name = os.path.splitext(os.path.basename(config_path.split(":")[0]))[0]
  suffix = (os.environ.get("WANDB_RUN_ID")
            or datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
  return os.path.join("runs", f"{name}-{suffix}")


def cluster_detected(environ=os.environ) -> bool:
  """Whether a cluster launched this process as one of several, so that
  `jax.distributed.initialize()` can find its peers by itself: a Cloud TPU VM
  (one process per host; on a single-host slice it finds just itself), GKE
  TPU workers, or a Slurm job step with more than one task (one per GPU)."""
  if environ.get("TPU_WORKER_HOSTNAMES") or environ.get(
      "TPU_PROCESS_ADDRESSES"):
    return True
  # An srun step's task count (a batch script itself is one task, whatever
  # --ntasks the job has).
  tasks = environ.get("SLURM_STEP_NUM_TASKS", environ.get("SLURM_NTASKS", "1"))
  if "SLURM_JOB_ID" in environ and int(tasks) > 1:
    return True
  try:  # set by `import jax` when libtpu and TPU chips are present
    from jax._src import cloud_tpu_init
  except ImportError:
    return False
  return bool(getattr(cloud_tpu_init, "running_in_cloud_tpu_vm", False))


def _initialize_distributed() -> None:
  """Explicit flags, or auto-detection on TPU VMs and Slurm."""
  import jax
  explicit = (FLAGS.coordinator_address, FLAGS.num_processes,
              FLAGS.process_id)
  if any(v is not None for v in explicit):
    if None in explicit:
      _fail("--coordinator_address, --num_processes and --process_id must be "
            "given together")
    if not 0 <= FLAGS.process_id < FLAGS.num_processes:
      _fail(f"--process_id={FLAGS.process_id} must be in [0, "
            f"--num_processes={FLAGS.num_processes})")
    jax.distributed.initialize(coordinator_address=FLAGS.coordinator_address,
                               num_processes=FLAGS.num_processes,
                               process_id=FLAGS.process_id)
  elif cluster_detected():
    jax.distributed.initialize()


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    _fail(f"unexpected arguments: {' '.join(argv[1:])}")
  if FLAGS.config is None:
    _fail("--config is required, e.g. --config=configs/dcgan.py:digits")
  if not FLAGS["verbosity"].present:  # Orbax logs every save at INFO
    logging.set_verbosity(logging.WARNING)
  workdir = FLAGS.workdir
  if workdir and "://" in workdir:
    _fail(f"--workdir={workdir}: URLs are not supported; give a directory "
          "that every host sees, e.g. a Cloud Storage FUSE mount "
          "(tpu/setup.sh mounts gs://BUCKET at /gcs/BUCKET) or NFS")
  _initialize_distributed()
  if not workdir:
    import jax
    if jax.process_count() > 1 and "WANDB_RUN_ID" not in os.environ:
      _fail("--workdir is required with several processes: they must all "
            "write to the same directory")
    workdir = default_workdir(flags.FLAGS["config"].config_filename)
    if jax.process_index() == 0:
      print(f"no --workdir given: writing to {workdir}", file=sys.stderr)
  from gen_jax import train
  try:
    train.train_and_evaluate(FLAGS.config, workdir)
  except UserError as e:
    _fail(str(e), e.exit_code)
  except Preempted as e:  # a checkpoint was saved: not a failure
    print(str(e), file=sys.stderr)
    sys.exit(0)
  except KeyboardInterrupt:  # a second Ctrl-C: stopped without saving
    print("interrupted: resuming starts from the last checkpoint",
          file=sys.stderr)
    sys.exit(130)


def run() -> None:
  """Console-script entry point (`gen-jax`)."""
  app.run(main, flags_parser=_parse_flags)


if __name__ == "__main__":
  run()
