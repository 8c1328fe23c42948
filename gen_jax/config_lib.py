"""Shared config defaults, the config argument syntax, and validation.

Every `configs/NAME.py` builds on `base()` and is called as
`--config=configs/NAME.py:ARG`, where ARG is a comma-separated list: a dataset
name (`digits`, `mnist`, `folder:/path/to/images`, ...) and optionally `small`,
which shrinks the model and run so that tests can run every config quickly.
"""

import ml_collections

from gen_jax import elbo, losses, penalties, schedules
from gen_jax.errors import ConfigError
from gen_jax.logger import WANDB_MODES
from gen_jax.models.layers import D_NORMS
from gen_jax.models.upsample import UPSAMPLE_IMPLS

TRAINERS = ("gan", "vae")
ON_NONFINITE = ("stop", "skip")

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
  """Fields every config has; the per-model configs fill in the rest."""
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
  return c


def _one_of(field: str, value, allowed) -> None:
  if value not in allowed:
    raise ConfigError(f"{field}={value!r} is not one of: "
                      f"{', '.join(map(str, allowed))}")


def _positive(field: str, value) -> None:
  if not value > 0:
    raise ConfigError(f"{field}={value!r} must be positive")


def validate(config) -> None:
  """Raises ConfigError naming the first bad field and what is allowed."""
  from gen_jax import data
  from gen_jax.trainers import gan, vae
  _one_of("config.trainer", config.trainer, TRAINERS)
  data.dataset_factory(config.data.name)  # raises on an unknown name
  _positive("config.data.batch_size", config.data.batch_size)
  for field in ("num_steps", "log_every", "eval_every", "checkpoint_every",
                "keep_checkpoints", "num_eval_samples", "num_seeds"):
    _positive(f"config.train.{field}", config.train[field])
  _one_of("config.train.on_nonfinite", config.train.on_nonfinite,
          ON_NONFINITE)
  _one_of("config.wandb.mode", config.wandb.mode, WANDB_MODES)
  schedules.DECAYS.get(config.optim.decay)
  m = config.model
  if config.trainer == "gan":
    _one_of("config.model.arch", m.arch, gan.ARCHS)
    losses.GAN_LOSSES.get(config.gan.loss)
    penalties.PENALTIES.get(config.gan.penalty)
    gan.NOISE.get(m.noise)
    _one_of("config.model.d_norm", m.d_norm, D_NORMS)
    _one_of("config.model.upsample", m.upsample, UPSAMPLE_IMPLS)
    _positive("config.gan.n_critic", config.gan.n_critic)
    _positive("config.model.noise_dim", m.noise_dim)
    if not 0.0 <= config.gan.ema_decay < 1.0:
      raise ConfigError(f"config.gan.ema_decay={config.gan.ema_decay!r} must "
                        "be in [0, 1)")
    if config.gan.penalty_weight < 0:
      raise ConfigError(f"config.gan.penalty_weight="
                        f"{config.gan.penalty_weight!r} must be >= 0")
    if m.d_maxout_pieces == 1 or m.d_maxout_pieces < 0:
      raise ConfigError(f"config.model.d_maxout_pieces={m.d_maxout_pieces!r} "
                        "must be 0 (LeakyReLU units) or at least 2")
    if m.init_std < 0:
      raise ConfigError(f"config.model.init_std={m.init_std!r} must be >= 0 "
                        "(0: LeCun normal)")
    for field in ("g_lr", "d_lr"):
      _positive(f"config.optim.{field}", config.optim[field])
    _validate_tricks(config)
  else:
    _one_of("config.model.arch", m.arch, vae.ARCHS)
    elbo.LIKELIHOODS.get(m.likelihood)
    _one_of("config.model.upsample", m.upsample, UPSAMPLE_IMPLS)
    _positive("config.model.latent_dim", m.latent_dim)
    _positive("config.optim.lr", config.optim.lr)


def _validate_tricks(config) -> None:
  """The mode-collapse switches of the GAN trainer (see gan_defaults)."""
  g, m = config.gan, config.model
  _positive("config.gan.pack", g.pack)
  if config.data.batch_size % g.pack:
    raise ConfigError(f"config.data.batch_size={config.data.batch_size} must "
                      f"be divisible by config.gan.pack={g.pack}")
  for field in ("unroll_steps", "instance_noise",
                "instance_noise_anneal_steps"):
    if g[field] < 0:
      raise ConfigError(f"config.gan.{field}={g[field]!r} must be >= 0")
  if not 0.0 <= g.label_smoothing < 1.0:
    raise ConfigError(f"config.gan.label_smoothing={g.label_smoothing!r} "
                      "must be in [0, 1)")
  losses.with_label_smoothing(losses.GAN_LOSSES.get(g.loss),
                              g.label_smoothing)  # raises for other losses
  if m.minibatch_std_group < 0:
    raise ConfigError(f"config.model.minibatch_std_group="
                      f"{m.minibatch_std_group!r} must be >= 0 (0: the whole "
                      "batch)")
  d_batch = config.data.batch_size // g.pack
  group = min(m.minibatch_std_group or d_batch, d_batch)
  if m.minibatch_std and d_batch % group:
    raise ConfigError(
        f"config.model.minibatch_std_group={m.minibatch_std_group} must "
        f"divide the discriminator's batch of {d_batch} (batch_size / pack)")


def gan_model(arch: str) -> ml_collections.ConfigDict:
  """Generator and critic architecture fields of the GAN trainer."""
  m = ml_collections.ConfigDict()
  m.arch = arch
  m.noise_dim = 100
  m.noise = "normal"
  m.d_norm = "batch" if arch == "dcgan" else "none"
  # dcgan: base widths (ngf, ndf) and the generator's 2x upsampling.
  m.g_width = 64
  m.d_width = 64
  m.upsample = "sub_pixel"
  # mlp: hidden layer widths.
  m.g_hidden = (400, 400, 400, 400)
  m.g_batch_norm = True
  m.d_hidden = (200, 200, 200)
  m.d_maxout_pieces = 0  # > 1: maxout hidden units of that many pieces
  m.init_std = 0.0       # > 0: N(0, init_std^2) weights; 0: LeCun normal
  # Minibatch standard deviation (Karras et al. 2018) before the critic's
  # output layer, over groups of minibatch_std_group examples (0: the whole
  # critic batch, which any batch size allows; ProGAN uses 4).
  m.minibatch_std = False
  m.minibatch_std_group = 0
  return m


def gan_defaults(loss: str, penalty: str) -> ml_collections.ConfigDict:
  g = ml_collections.ConfigDict()
  g.loss = loss
  g.penalty = penalty
  g.penalty_weight = 0.0 if penalty == "none" else 10.0
  g.n_critic = 1
  g.ema_decay = 0.0   # > 0: sample (and evaluate) with an EMA of G's weights
  # Mode-collapse remedies (off by default); see gen_jax/tricks.py.
  g.pack = 1                  # PacGAN: D judges packs of m samples
  g.unroll_steps = 0          # unrolled GAN: G against D unrolled k steps
  g.instance_noise = 0.0      # std of Gaussian noise on D's inputs
  g.instance_noise_anneal_steps = 0  # > 0: std falls linearly to 0 by then
  g.label_smoothing = 0.0     # real target 1 - s (cross-entropy losses)
  return g


def two_adams(lr: float, b1: float, b2: float) -> ml_collections.ConfigDict:
  o = ml_collections.ConfigDict()
  o.g_lr, o.g_b1, o.g_b2 = lr, b1, b2
  o.d_lr, o.d_b1, o.d_b2 = lr, b1, b2
  o.decay = "constant"  # or linear / cosine (schedules.py)
  return o


def vae_model(arch: str) -> ml_collections.ConfigDict:
  m = ml_collections.ConfigDict()
  m.arch = arch
  m.latent_dim = 20
  m.likelihood = "bernoulli"
  m.hidden = (500,)       # mlp
  m.width = 32            # conv
  m.upsample = "sub_pixel"
  return m


def one_adam(lr: float) -> ml_collections.ConfigDict:
  o = ml_collections.ConfigDict()
  o.lr, o.b1, o.b2 = lr, 0.9, 0.999
  o.decay = "constant"  # or linear / cosine (schedules.py)
  return o


def make_small(c: ml_collections.ConfigDict) -> None:
  """A tiny model and a few steps: every config runs in seconds (tests)."""
  c.data.batch_size = 16
  c.train.num_steps = 4
  c.train.log_every = 2
  c.train.eval_every = 4
  c.train.checkpoint_every = 2
  c.train.num_eval_samples = 64
  c.wandb.mode = "disabled"
  m = c.model
  if c.trainer == "gan":
    m.g_width = m.d_width = 8
    m.g_hidden = (16, 16)
    m.d_hidden = (16, 16)
    m.noise_dim = min(m.noise_dim, 16)
  else:
    m.hidden = (32,)
    m.width = 8
    m.latent_dim = 4
