"""Shared config defaults, the config argument syntax, and validation.

Every `configs/NAME.py` builds on `base()` and is called as
`--config=configs/NAME.py:ARG`, where ARG is a comma-separated list: a dataset
name (`digits`, `mnist`, `folder:/path/to/images`, ...) and optionally `small`,
which shrinks the model and run so that tests can run every config quickly.
"""

import ml_collections

from gen_jax import schedules
from gen_jax.errors import ConfigError
from gen_jax.logger import WANDB_MODES
from gen_jax.validation import one_of, positive

ON_NONFINITE = ("stop", "skip")
INCEPTION_REFERENCES = ("eval", "train")

# The only fields that may differ between the config a workdir was started
# with (its config.json) and the one it is resumed with: they change how long
# the run goes, what it reports and where, but not the model, the data or the
# optimisation. Any other difference stops the resume (workdir.py). A new
# field is *not* changeable unless it is added here. `prefix.*` matches a
# whole group.
CHANGEABLE_ON_RESUME = (
    "train.num_steps",
    "train.log_every",
    "train.eval_every",
    "train.checkpoint_every",
    "train.keep_checkpoints",
    "train.on_nonfinite",   # stop -> skip is how to get past a NaN
    "train.save_eval_samples",
    "data.data_dir",        # the same data, found somewhere else
    "mesh.*",               # data-parallel layout: the same maths
    "wandb.*",
    "evals",                # what is measured, not what is trained
    "inception.*",
)


def parse_arg(arg: str | None, default_dataset: str) -> tuple[str, bool]:
  """'digits,small' -> ('digits', True). The dataset may contain a colon."""
  tokens = [t for t in (arg or "").split(",") if t]
  small = "small" in tokens
  names = [t for t in tokens if t != "small"]
  if len(names) > 1:
    raise ConfigError(f"config argument {arg!r} names more than one dataset: "
                      f"{', '.join(names)}")
  return (names[0] if names else default_dataset), small


_GAN_RESOLUTION = {"mnist": 28, "fashion_mnist": 28, "stacked_mnist": 28,
                   "cifar10": 32, "celeb_a": 64}


def gan_image_size(dataset: str) -> int:
  """The DCGAN resolution for a dataset: its native size, 64 for folders of
  images, 16 for the embedded digits."""
  if dataset.startswith("folder:"):
    return 64
  return _GAN_RESOLUTION.get(dataset, 16)


def base(trainer: str, dataset: str) -> ml_collections.ConfigDict:
  """Fields every config has, and the trainer's own groups with its defaults
  (`TrainerSpec.defaults`, e.g. `model`, `gan`, `optim`); `configs/NAME.py`
  then sets what its preset changes."""
  from gen_jax import trainers
  spec = trainers.TRAINERS.get(trainer)
  c = ml_collections.ConfigDict()
  c.trainer = trainer
  c.seed = 0

  c.data = ml_collections.ConfigDict()
  c.data.name = dataset
  c.data.batch_size = 64          # global batch, over all devices/processes
  c.data.image_size = 16
  c.data.value_range = (-1.0, 1.0)
  c.data.binarize = False
  c.data.data_dir = ""            # '' = $TFDS_DATA_DIR or TFDS's default
  c.data.num_threads = 4          # TFDS/folder: batches decoded concurrently
  c.data.prefetch = 8             # TFDS/folder: decoded batches kept ready
  c.data.num_workers = 0          # TFDS/folder: grain worker processes

  c.train = ml_collections.ConfigDict()
  c.train.num_steps = 1000
  c.train.log_every = 50
  c.train.eval_every = 500
  c.train.checkpoint_every = 500
  c.train.keep_checkpoints = 3
  c.train.num_eval_samples = 2500   # samples for sample-quality metrics
  # Also write each evaluation's samples as samples/step_NNNNNNN.npy
  # ((num_eval_samples, ...), or (num_seeds, num_eval_samples, ...)).
  c.train.save_eval_samples = False
  c.train.on_nonfinite = "stop"
  # N > 1 trains N independent runs (seeds seed .. seed+N-1) in one program.
  c.train.num_seeds = 1

  c.mesh = ml_collections.ConfigDict()
  c.mesh.shape = (-1,)
  c.mesh.axes = ("data",)
  c.mesh.num_devices = 0          # 0: all devices; N: the first N (1 process)

  c.wandb = ml_collections.ConfigDict()
  c.wandb.mode = "offline"
  c.wandb.project = "gen_jax"
  c.wandb.entity = ""
  c.wandb.name = ""
  c.wandb.group = ""
  c.wandb.tags = ()

  # Evaluators run at every evaluation (gen_jax/evaluators): names, or
  # 'default' for those that suit the dataset and the trainer.
  c.evals = ("default",)

  # The `inception` evaluator (docs/metrics.md): FID/KID/IS/PR/DC of
  # `num_samples` samples against the `reference` split ('eval': the held-out
  # split; 'train': the training set), `num_real` of its images (0: all).
  # FID-50k against the training set, as most papers: num_samples=50000,
  # reference='train'. Weights: '' = $GEN_JAX_INCEPTION_WEIGHTS, then the
  # cache; without any, one line says what to supply and the run goes on.
  c.inception = ml_collections.ConfigDict()
  c.inception.num_samples = 10000
  c.inception.num_real = 0
  c.inception.reference = "eval"
  c.inception.weights = ""
  c.inception.batch_per_device = 50  # images per device per network call
  spec.defaults(c)
  return c


def validate(config) -> None:
  """Raises ConfigError naming the first bad field and what is allowed.

  The fields every config has are checked here; the trainer's own groups by
  the trainer (`TrainerSpec.validate`), which asks its architecture.
  """
  from gen_jax import data, evaluators, trainers
  spec = trainers.TRAINERS.get(config.trainer)
  data.dataset_factory(config.data.name)  # raises on an unknown name
  positive("config.data.batch_size", config.data.batch_size)
  for field in ("num_steps", "log_every", "eval_every", "checkpoint_every",
                "keep_checkpoints", "num_eval_samples", "num_seeds"):
    positive(f"config.train.{field}", config.train[field])
  one_of("config.train.on_nonfinite", config.train.on_nonfinite,
         ON_NONFINITE)
  one_of("config.wandb.mode", config.wandb.mode, WANDB_MODES)
  for field in ("num_samples", "batch_per_device"):
    positive(f"config.inception.{field}", config.inception[field])
  if config.inception.num_real < 0:
    raise ConfigError(f"config.inception.num_real={config.inception.num_real}"
                      " must be 0 (the whole split) or positive")
  one_of("config.inception.reference", config.inception.reference,
         INCEPTION_REFERENCES)
  schedules.DECAYS.get(config.optim.decay)
  evaluators.check_names(config.evals)
  spec.validate(config)


def make_small(c: ml_collections.ConfigDict) -> None:
  """A tiny model and a few steps: every config runs in seconds (tests)."""
  from gen_jax import trainers
  c.data.batch_size = 16
  c.train.num_steps = 4
  c.train.log_every = 2
  c.train.eval_every = 4
  c.train.checkpoint_every = 2
  c.train.num_eval_samples = 64
  c.wandb.mode = "disabled"
  c.inception.num_samples = 16
  c.inception.num_real = 16
  c.inception.batch_per_device = 1
  trainers.TRAINERS.get(c.trainer).small(c)
