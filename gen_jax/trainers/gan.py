"""The GAN trainer: a generator and a discriminator, n_critic critic updates
per generator update, the objective of each a sum of registered terms.

DCGAN, WGAN-GP, the 2D GANs and the class-conditional GANs are configs of
this one trainer. Networks: `generator` (noise z, and labels when
conditional -> samples) and `discriminator` (samples, labels -> logits, plus
class logits with AC-GAN's auxiliary classifier). Terms (objectives.py): the
adversarial loss (`config.gan.loss`) for both, the critic's penalty
(`config.gan.penalty`, lazily every `penalty_every` steps), AC-GAN's
classifier loss (`config.gan.ac_weight`) and a generator regulariser
(`config.gan.g_regularizer`, lazily every `g_regularizer_every` steps;
StyleGAN2's path length keeps its running mean in `state.aux`). Unrolling
and the generator's EMA are wrappers around the updates (`updates.py`);
DiffAugment (with ADA's adaptive probability), instance noise and packing
transform every batch the critic sees (`augment.py`, `tricks.py`).
Progressive growing (`config.gan.progressive`, `models/progressive.py`)
makes each resolution phase one of the trainer's phases
(`train_step(..., phase)`). Architectures: `ARCHS` (dcgan, mlp, resnet,
stylegan2).
"""

import jax
import jax.numpy as jnp
import ml_collections
import optax

import copy
import functools

from gen_jax import (augment, losses, objectives, penalties, schedules,
                     tricks, updates)
from gen_jax.data.base import DatasetInfo
from gen_jax.errors import ConfigError
from gen_jax.models import dcgan, mlp, progressive, resnet, stylegan2
from gen_jax.models.layers import BN_MOMENTUM, D_NORMS
from gen_jax.models.upsample import UPSAMPLE_IMPLS
from gen_jax.registry import Registry
from gen_jax.trainers import base
from gen_jax.trainers.base import Network, TrainState
from gen_jax.validation import at_least, one_of, positive

G, D = "generator", "discriminator"

NOISE: Registry = Registry("config.model.noise")
NOISE.add("normal", lambda key, shape: jax.random.normal(key, shape))
NOISE.add("uniform", lambda key, shape: jax.random.uniform(key, shape,
                                                           minval=-1.0,
                                                           maxval=1.0))
D_COND = ("projection", "none")
CRITIC_LOOPS = ("unroll", "scan")


# -- architectures: each owns config.model.<name> ----------------------------

ARCHS: Registry[base.ArchSpec] = Registry("config.model.arch")

# config.model.compute_dtype: the dtype of the networks' activations and
# matrix products. Parameters, optimizer states, batch-norm statistics,
# logits and losses stay float32 (Flax `dtype=` with `param_dtype` float32).
COMPUTE_DTYPES = ("float32", "bfloat16")
MIXED_PRECISION_ARCHS = ("dcgan", "resnet", "stylegan2")


def compute_dtype(config):
  return jnp.dtype(config.model.compute_dtype)


def _dcgan_defaults() -> ml_collections.ConfigDict:
  a = ml_collections.ConfigDict()
  a.g_width = 64        # ngf: the generator's last hidden width
  a.d_width = 64        # ndf: the critic's first width
  a.upsample = "sub_pixel"
  return a


def _dcgan_validate(config) -> None:
  one_of("config.model.dcgan.upsample", config.model.dcgan.upsample,
         UPSAMPLE_IMPLS)
  positive("config.model.dcgan.g_width", config.model.dcgan.g_width)
  positive("config.model.dcgan.d_width", config.model.dcgan.d_width)


def _dcgan_small(a) -> None:
  a.g_width = a.d_width = 8


def _dcgan_build(config, info: DatasetInfo, num_classes: int,
                 aux_classes: int, mbstd):
  a, m = config.model.dcgan, config.model
  if info.kind != "image":
    raise ConfigError(f"config.model.arch='dcgan' needs image data; "
                      f"{info.name} is {info.kind} (use arch 'mlp')")
  grows = bool(config.gan.progressive.start_res)
  g = dcgan.Generator(resolution=info.example_shape[0],
                      channels=info.example_shape[-1], width=a.g_width,
                      upsample=a.upsample, num_classes=num_classes,
                      progressive=grows, dtype=compute_dtype(config))
  d = dcgan.Discriminator(width=a.d_width, norm=m.d_norm, minibatch_std=mbstd,
                          dtype=compute_dtype(config), progressive=grows,
                          resolution=info.example_shape[0],
                          num_classes=num_classes,
                          projection=bool(num_classes)
                          and m.d_cond == "projection",
                          aux_classes=aux_classes)
  return g, d


ARCHS.add("dcgan", base.ArchSpec(_dcgan_defaults, _dcgan_build,
                                 _dcgan_validate, _dcgan_small,
                                 conditional=True, loop_safe=True,
                                 levels=dcgan.levels))


def _mlp_defaults() -> ml_collections.ConfigDict:
  a = ml_collections.ConfigDict()
  a.g_hidden = (400, 400, 400, 400)
  a.g_batch_norm = True
  a.d_hidden = (200, 200, 200)
  a.d_maxout_pieces = 0  # > 1: maxout hidden units of that many pieces
  a.init_std = 0.0       # > 0: N(0, init_std^2) weights; 0: LeCun normal
  return a


def _mlp_validate(config) -> None:
  a = config.model.mlp
  if a.d_maxout_pieces == 1 or a.d_maxout_pieces < 0:
    raise ConfigError(f"config.model.mlp.d_maxout_pieces="
                      f"{a.d_maxout_pieces!r} must be 0 (LeakyReLU units) or "
                      "at least 2")
  at_least("config.model.mlp.init_std", a.init_std, 0, "0: LeCun normal")


def _mlp_small(a) -> None:
  a.g_hidden = (16, 16)
  a.d_hidden = (16, 16)


def _mlp_build(config, info: DatasetInfo, num_classes: int, aux_classes: int,
               mbstd):
  del num_classes, aux_classes  # validated: the MLP GAN is unconditional
  a, m = config.model.mlp, config.model
  g = mlp.Generator(out_dim=info.example_shape[0], hidden=tuple(a.g_hidden),
                    batch_norm=a.g_batch_norm, init_std=a.init_std)
  d = mlp.Discriminator(hidden=tuple(a.d_hidden), norm=m.d_norm,
                        minibatch_std=mbstd, maxout_pieces=a.d_maxout_pieces,
                        init_std=a.init_std)
  return g, d


ARCHS.add("mlp", base.ArchSpec(_mlp_defaults, _mlp_build, _mlp_validate,
                               _mlp_small, loop_safe=True))


def _resnet_defaults() -> ml_collections.ConfigDict:
  """SNGAN's CIFAR-10 ResNet (Miyato et al. 2018, appendix B.4)."""
  a = ml_collections.ConfigDict()
  a.g_width = 256
  # Width multipliers of the 4x4 map and of each block's output; (): all 1.
  a.g_mult = ()
  a.g_spectral_norm = False  # BigGAN: True
  a.shared_dim = 0         # > 0: BigGAN's shared class embedding
  a.hierarchical = False   # BigGAN's z split over the blocks
  a.g_attention = 0        # resolution of G's self-attention (0: none)
  a.d_width = 128
  a.d_mult = (1, 1, 1, 1)
  a.d_down = (True, True, False, False)
  a.d_attention = 0
  return a


def _resnet_validate(config) -> None:
  a, m = config.model.resnet, config.model
  positive("config.model.resnet.g_width", a.g_width)
  positive("config.model.resnet.d_width", a.d_width)
  at_least("config.model.resnet.shared_dim", a.shared_dim, 0,
           "0: per-class batch-norm tables")
  one_of("config.model.d_norm", m.d_norm, ("spectral", "none"))
  size = config.data.image_size
  one_of("config.data.image_size", size, resnet.RESOLUTIONS)
  n = resnet.num_up_blocks(size)
  if a.g_mult and len(a.g_mult) != n + 1:
    raise ConfigError(f"config.model.resnet.g_mult={tuple(a.g_mult)} needs "
                      f"{n + 1} entries at {size} px: the 4x4 map's and each "
                      "of the generator's blocks'")
  if not a.d_mult or len(a.d_mult) != len(a.d_down):
    raise ConfigError(f"config.model.resnet.d_mult={tuple(a.d_mult)} and "
                      f"d_down={tuple(a.d_down)} need the same, non-zero "
                      "length (one entry per critic block)")
  if size // 2 ** sum(map(bool, a.d_down)) < 1:
    raise ConfigError(f"config.model.resnet.d_down={tuple(a.d_down)} halves "
                      f"{size} px below 1")
  g_res = [8 * 2 ** i for i in range(n)]
  widths = [a.g_width * k for k in (a.g_mult or (1,) * (n + 1))][1:]
  if a.g_attention and (a.g_attention not in g_res
                        or widths[g_res.index(a.g_attention)] < 8):
    raise ConfigError(f"config.model.resnet.g_attention={a.g_attention} "
                      f"must be 0 or a generator block's resolution "
                      f"{g_res} (with width >= 8)")
  d_res = [size // 2 ** sum(map(bool, a.d_down[:i + 1]))
           for i in range(len(a.d_down))]
  if a.d_attention and (a.d_attention not in d_res or a.d_attention % 2
                        or a.d_width * a.d_mult[d_res.index(a.d_attention)]
                        < 8):
    raise ConfigError(f"config.model.resnet.d_attention={a.d_attention} "
                      f"must be 0 or an even critic block resolution "
                      f"{sorted(set(d_res))} (with width >= 8)")
  start = config.gan.progressive.start_res
  if start and start in resnet.levels(size) and resnet.critic_entry(
      size, tuple(map(bool, a.d_down)), start) is None:
    raise ConfigError(f"config.gan.progressive.start_res={start}: the critic "
                      f"(config.model.resnet.d_down={tuple(a.d_down)}) never "
                      f"reads {start} px images at {size} px; start at a "
                      "resolution one of its blocks reads")
  if a.hierarchical and m.noise_dim < n + 1:
    raise ConfigError(f"config.model.noise_dim={m.noise_dim} is too small to "
                      f"split over {n + 1} parts (resnet.hierarchical)")


def _resnet_small(a) -> None:
  a.g_width = a.d_width = 8


def _resnet_build(config, info: DatasetInfo, num_classes: int,
                  aux_classes: int, mbstd):
  a, m = config.model.resnet, config.model
  if info.kind != "image":
    raise ConfigError(f"config.model.arch='resnet' needs image data; "
                      f"{info.name} is {info.kind} (use arch 'mlp')")
  g = resnet.Generator(resolution=info.example_shape[0],
                       channels=info.example_shape[-1], width=a.g_width,
                       mult=tuple(a.g_mult), num_classes=num_classes,
                       shared_dim=a.shared_dim, hierarchical=a.hierarchical,
                       spectral_norm=a.g_spectral_norm,
                       attention=a.g_attention,
                       progressive=bool(config.gan.progressive.start_res),
                       dtype=compute_dtype(config))
  d = resnet.Discriminator(width=a.d_width, mult=tuple(a.d_mult),
                           down=tuple(map(bool, a.d_down)), norm=m.d_norm,
                           attention=a.d_attention, minibatch_std=mbstd,
                           num_classes=num_classes,
                           projection=bool(num_classes)
                           and m.d_cond == "projection",
                           aux_classes=aux_classes,
                           progressive=bool(config.gan.progressive.start_res),
                           resolution=info.example_shape[0],
                           dtype=compute_dtype(config))
  return g, d


ARCHS.add("resnet", base.ArchSpec(_resnet_defaults, _resnet_build,
                                  _resnet_validate, _resnet_small,
                                  conditional=True, levels=resnet.levels))


def _stylegan2_defaults() -> ml_collections.ConfigDict:
  """StyleGAN2 (Karras et al. 2020; models/stylegan2.py) at CIFAR scale."""
  a = ml_collections.ConfigDict()
  a.w_dim = 512
  a.mapping_layers = 8
  a.mapping_lr_mul = 0.01
  # Feature maps at r px: min(4 * width / r, max_width), i.e. `width` at
  # 4x4 halved per doubling, capped (the official channel_base / r with
  # channel_base = 4 * width; its default 32768: 512 up to 64 px).
  a.g_width = 8192
  a.d_width = 8192
  a.max_width = 512
  a.mixing = 0.9         # style-mixing probability (0: off)
  a.truncation = 1.0     # psi for samples (evaluation); 1.0: off
  a.w_avg_beta = 0.995   # w_avg <- w_avg + (1 - beta) (mean w - w_avg)
  a.mbstd_group = 4
  # conditional: layers of the critic's label mapping (the official
  # default, 8; the generator's label joins its z mapping)
  a.d_mapping_layers = 8
  return a


def _stylegan2_validate(config) -> None:
  a, m = config.model.stylegan2, config.model
  one_of("config.data.image_size", config.data.image_size,
         stylegan2.RESOLUTIONS)
  for field in ("w_dim", "mapping_layers", "g_width", "d_width",
                "max_width", "mbstd_group"):
    positive(f"config.model.stylegan2.{field}", a[field])
  at_least("config.model.stylegan2.d_mapping_layers", a.d_mapping_layers, 0)
  if config.gan.ac_weight > 0:
    raise ConfigError(f"config.gan.ac_weight={config.gan.ac_weight!r}: arch "
                      "'stylegan2' has no auxiliary classifier; its "
                      "conditional critic is config.model.d_cond="
                      "'projection' (the official label mapping)")
  positive("config.model.stylegan2.mapping_lr_mul", a.mapping_lr_mul)
  for field in ("mixing", "w_avg_beta"):
    if not 0.0 <= a[field] <= 1.0:
      raise ConfigError(f"config.model.stylegan2.{field}={a[field]!r} must "
                        "be in [0, 1]")
  if not 0.0 <= a.truncation <= 1.0:
    raise ConfigError(f"config.model.stylegan2.truncation={a.truncation!r} "
                      "must be in [0, 1] (1.0: off)")
  one_of("config.model.d_norm", m.d_norm, ("none",))
  if m.minibatch_std:
    raise ConfigError("config.model.minibatch_std=True: arch 'stylegan2' "
                      "has its own minibatch std (config.model.stylegan2."
                      "mbstd_group); leave it False")
  d_batch = config.data.batch_size // config.gan.pack
  if d_batch % min(a.mbstd_group, d_batch):
    raise ConfigError(f"config.model.stylegan2.mbstd_group={a.mbstd_group} "
                      f"must divide the discriminator's batch of {d_batch}")


def _stylegan2_small(a) -> None:
  a.w_dim = 16
  a.mapping_layers = 2
  a.g_width = a.d_width = a.max_width = 16
  a.d_mapping_layers = 2


def _stylegan2_build(config, info: DatasetInfo, num_classes: int,
                     aux_classes: int, mbstd):
  del aux_classes, mbstd  # validated: no AC head; its own mbstd
  a = config.model.stylegan2
  if info.kind != "image":
    raise ConfigError(f"config.model.arch='stylegan2' needs image data; "
                      f"{info.name} is {info.kind} (use arch 'mlp')")
  g = stylegan2.Generator(
      resolution=info.example_shape[0], channels=info.example_shape[-1],
      z_dim=config.model.noise_dim, w_dim=a.w_dim,
      mapping_layers=a.mapping_layers, mapping_lr_mul=a.mapping_lr_mul,
      width=a.g_width, max_width=a.max_width, mixing=a.mixing,
      truncation=a.truncation, w_avg_beta=a.w_avg_beta,
      num_classes=num_classes, dtype=compute_dtype(config))
  d = stylegan2.Discriminator(
      width=a.d_width, max_width=a.max_width, mbstd_group=a.mbstd_group,
      num_classes=num_classes if config.model.d_cond == "projection" else 0,
      mapping_layers=a.d_mapping_layers,
      progressive=bool(config.gan.progressive.start_res),
      resolution=info.example_shape[0], dtype=compute_dtype(config))
  return g, d


ARCHS.add("stylegan2", base.ArchSpec(_stylegan2_defaults, _stylegan2_build,
                                     _stylegan2_validate, _stylegan2_small,
                                     conditional=True,
                                     levels=stylegan2.levels))
# Architectures whose generator has `mapping` (z -> styles ws) and
# `synthesis` (ws -> image) halves, which the path-length regulariser needs.
STYLE_ARCHS = ("stylegan2",)


# -- config: defaults, validation, small -------------------------------------

def model_config(arch: str) -> ml_collections.ConfigDict:
  """config.model for `arch`: what the trainer and every critic read, plus
  the architecture's own `config.model.<arch>`."""
  m = ml_collections.ConfigDict()
  m.arch = arch
  m.noise_dim = 100
  m.noise = "normal"
  m.d_norm = {"dcgan": "batch", "resnet": "spectral"}.get(arch, "none")
  # Minibatch standard deviation (Karras et al. 2018) before the critic's
  # output layer, over groups of minibatch_std_group examples (0: the whole
  # critic batch; ProGAN uses 4).
  m.minibatch_std = False
  m.minibatch_std_group = 0
  m.d_cond = "projection"  # conditional: how the critic uses the label
  m.compute_dtype = "float32"  # or bfloat16 (COMPUTE_DTYPES)
  m[arch] = ARCHS.get(arch).defaults()
  return m


def two_adams(lr: float, b1: float, b2: float) -> ml_collections.ConfigDict:
  o = ml_collections.ConfigDict()
  o.g_lr, o.g_b1, o.g_b2 = lr, b1, b2
  o.d_lr, o.d_b1, o.d_b2 = lr, b1, b2
  o.decay = "constant"  # or linear / cosine (schedules.py)
  return o


def defaults(c: ml_collections.ConfigDict) -> None:
  c.model = model_config("dcgan")
  g = c.gan = ml_collections.ConfigDict()
  g.loss = "non_saturating"
  g.penalty = "none"
  g.penalty_weight = 0.0
  g.penalty_every = 1     # k > 1: lazy penalty, every k steps, weight * k
  g.n_critic = 1
  # How the n_critic updates are compiled: `unroll` (n copies: the fastest
  # steps) or `scan` (one lax.scan body: 30-45% less compile time, 4-9%
  # slower steps on XLA:CPU; for sweeps of short runs; BENCHMARKS.md).
  g.critic_loop = "unroll"
  g.weight_clip = 0.0     # > 0: WGAN's critic weights clipped to [-c, c]
  g.ema_decay = 0.0       # > 0: sample (and evaluate) with an EMA of G
  g.conditional = False   # condition G and D on the batch's class labels
  g.ac_weight = 0.0       # > 0: AC-GAN's auxiliary classifier loss
  g.g_regularizer = "none"  # objectives.G_REGULARIZERS, e.g. orthogonal
  g.g_regularizer_weight = 0.0
  g.g_regularizer_every = 1  # k > 1: lazy, every k steps, weight * k
  # path_length (StyleGAN2): decay of the running mean length, and the
  # share of the batch it is computed on (B / pl_batch_shrink examples).
  g.pl_decay = 0.01
  g.pl_batch_shrink = 2
  # Mode-collapse remedies (off by default); see gen_jax/tricks.py.
  g.pack = 1                  # PacGAN: D judges packs of m samples
  g.unroll_steps = 0          # unrolled GAN: G against D unrolled k steps
  g.instance_noise = 0.0      # std of Gaussian noise on D's inputs
  g.instance_noise_anneal_steps = 0  # > 0: std falls linearly to 0 by then
  g.label_smoothing = 0.0     # real target 1 - s (cross-entropy losses)
  # DiffAugment (augment.py) on every critic input, real and fake: a policy
  # such as 'color,translation,cutout' ('' off), each transform applied with
  # probability augment_p; with ada_target > 0, ADA's adaptive p, starting
  # at augment_p (ADA: 0; target 0.6; p moves every ada_interval steps, by
  # 1 per ada_kimg thousand real images).
  g.augment = ""
  g.augment_p = 1.0
  g.ada_target = 0.0
  g.ada_interval = 4
  g.ada_kimg = 500.0
  # Progressive growing (Karras et al. 2018; models/progressive.py): from
  # start_res px (0: off) one level at a time, each new level faded in over
  # phase_steps steps, then trained alone for phase_steps. reset_optimizer:
  # both networks' Adam moments (and bias-correction count; not the
  # learning-rate schedule) restart at every phase boundary, as ProGAN's
  # and StyleGAN's released code (reset_opt_for_new_lod).
  g.progressive = ml_collections.ConfigDict()
  g.progressive.start_res = 0
  g.progressive.phase_steps = 1000
  g.progressive.reset_optimizer = True
  c.optim = two_adams(2e-4, 0.5, 0.999)


def validate(config) -> None:
  m, g = config.model, config.gan
  arch = base.check_arch(config, ARCHS)
  losses.GAN_LOSSES.get(g.loss)
  penalties.PENALTIES.get(g.penalty)
  objectives.G_REGULARIZERS.get(g.g_regularizer)
  NOISE.get(m.noise)
  one_of("config.model.d_norm", m.d_norm, D_NORMS)
  one_of("config.model.d_cond", m.d_cond, D_COND)
  one_of("config.model.compute_dtype", m.compute_dtype, COMPUTE_DTYPES)
  if m.compute_dtype != "float32" and m.arch not in MIXED_PRECISION_ARCHS:
    raise ConfigError(f"config.model.compute_dtype={m.compute_dtype!r}: "
                      f"arch {m.arch!r} computes in float32 only; "
                      f"mixed precision: {', '.join(MIXED_PRECISION_ARCHS)}")
  positive("config.gan.n_critic", g.n_critic)
  one_of("config.gan.critic_loop", g.critic_loop, CRITIC_LOOPS)
  if g.critic_loop == "scan":
    safe = [n for n in ARCHS if ARCHS.get(n).loop_safe]
    if m.arch not in safe or g.progressive.start_res:
      raise ConfigError(
          f"config.gan.critic_loop='scan': arch {m.arch!r}"
          f"{' growing progressively' if g.progressive.start_res else ''} "
          "has convolutions that XLA:CPU runs many times slower inside a "
          f"loop; 'scan' needs one of: {', '.join(safe)} (not progressive)")
  positive("config.gan.penalty_every", g.penalty_every)
  positive("config.gan.g_regularizer_every", g.g_regularizer_every)
  positive("config.gan.pl_batch_shrink", g.pl_batch_shrink)
  if not 0.0 < g.pl_decay <= 1.0:
    raise ConfigError(f"config.gan.pl_decay={g.pl_decay!r} must be in (0, 1]")
  if g.g_regularizer == "path_length" and m.arch not in STYLE_ARCHS:
    raise ConfigError(f"config.gan.g_regularizer='path_length' needs a "
                      f"style-based generator; config.model.arch={m.arch!r} "
                      f"is not one of: {', '.join(STYLE_ARCHS)}")
  positive("config.model.noise_dim", m.noise_dim)
  if not 0.0 <= g.ema_decay < 1.0:
    raise ConfigError(f"config.gan.ema_decay={g.ema_decay!r} must be in "
                      "[0, 1)")
  for field in ("penalty_weight", "ac_weight", "g_regularizer_weight",
                "weight_clip"):
    at_least(f"config.gan.{field}", g[field], 0)
  for field in ("g_lr", "d_lr"):
    positive(f"config.optim.{field}", config.optim[field])
  if g.ac_weight > 0 and not g.conditional:
    raise ConfigError(f"config.gan.ac_weight={g.ac_weight!r} needs labels: "
                      "set config.gan.conditional=True")
  if g.conditional:
    if not arch.conditional:
      raise ConfigError(
          f"config.gan.conditional=True: config.model.arch={m.arch!r} is "
          "unconditional; conditional architectures: "
          + ", ".join(a for a in ARCHS if ARCHS.get(a).conditional))
    if g.pack > 1:
      raise ConfigError(f"config.gan.pack={g.pack} cannot be combined with "
                        "config.gan.conditional=True (a pack has no single "
                        "label); use pack=1")
  _validate_tricks(config)
  _validate_augment(config)
  _validate_progressive(config)


def _validate_progressive(config) -> None:
  p, m = config.gan.progressive, config.model
  if not p.start_res:
    return
  field = f"config.gan.progressive.start_res={p.start_res!r}"
  levels = ARCHS.get(m.arch).levels
  if levels is None:
    raise ConfigError(f"{field}: config.model.arch={m.arch!r} cannot grow "
                      "progressively; progressive architectures: "
                      + ", ".join(a for a in ARCHS if ARCHS.get(a).levels))
  size = config.data.image_size
  try:
    below = levels(size)[:-1]
  except ValueError as e:  # a resolution the architecture does not build
    raise ConfigError(f"config.data.image_size={size!r}: {e}") from None
  if p.start_res not in below:
    raise ConfigError(f"{field} must be 0 (off) or one of: "
                      f"{', '.join(map(str, below))} (the {m.arch} levels "
                      f"below config.data.image_size={size})")
  # A run shorter than the growth is allowed (it stops at a lower level):
  # a run may be trained in parts, each with a larger num_steps.
  positive("config.gan.progressive.phase_steps", p.phase_steps)


def _validate_augment(config) -> None:
  g = config.gan
  policy = augment.parse_policy(g.augment)
  low_ok = g.augment_p >= 0 if g.ada_target > 0 else g.augment_p > 0
  if not (low_ok and g.augment_p <= 1.0):
    raise ConfigError(f"config.gan.augment_p={g.augment_p!r} must be in "
                      + ("[0, 1] (ADA's initial p)" if g.ada_target > 0
                         else "(0, 1]"))
  if not 0.0 <= g.ada_target < 1.0:
    raise ConfigError(f"config.gan.ada_target={g.ada_target!r} must be in "
                      "[0, 1) (0: off; ADA: 0.6)")
  if g.ada_target > 0 and not policy:
    raise ConfigError(f"config.gan.ada_target={g.ada_target!r} adapts the "
                      "probability of config.gan.augment, which is empty "
                      "(e.g. 'color,translation,cutout')")
  positive("config.gan.ada_interval", g.ada_interval)
  positive("config.gan.ada_kimg", g.ada_kimg)


def validate_data(config, info: DatasetInfo) -> None:
  """Checks that need the dataset: labels for a conditional GAN; images in
  [-1, 1] for compare_gan's DRAGAN, which clips its perturbation there."""
  if config.gan.penalty == "dragan_compare_gan" and (
      info.kind != "image" or tuple(info.value_range) != (-1.0, 1.0)):
    raise ConfigError(
        f"config.gan.penalty='dragan_compare_gan' clips to images in [-1, 1]; "
        f"{info.name!r} is {info.kind} data in {tuple(info.value_range)} "
        "(use 'dragan')")
  if config.gan.augment and info.kind != "image":
    raise ConfigError(f"config.gan.augment={config.gan.augment!r} transforms "
                      f"images; {info.name!r} is {info.kind} data")
  if config.gan.conditional and num_classes(info) == 0:
    raise ConfigError(
        f"config.gan.conditional=True needs a dataset with one class label "
        f"per example; {info.name!r} has none (labelled: digits, mnist, "
        "fashion_mnist, cifar10)")


def _validate_tricks(config) -> None:
  g, m = config.gan, config.model
  positive("config.gan.pack", g.pack)
  if config.data.batch_size % g.pack:
    raise ConfigError(f"config.data.batch_size={config.data.batch_size} must "
                      f"be divisible by config.gan.pack={g.pack}")
  for field in ("unroll_steps", "instance_noise",
                "instance_noise_anneal_steps"):
    at_least(f"config.gan.{field}", g[field], 0)
  if not 0.0 <= g.label_smoothing < 1.0:
    raise ConfigError(f"config.gan.label_smoothing={g.label_smoothing!r} "
                      "must be in [0, 1)")
  losses.with_label_smoothing(losses.GAN_LOSSES.get(g.loss),
                              g.label_smoothing)  # raises for other losses
  at_least("config.model.minibatch_std_group", m.minibatch_std_group, 0,
           "0: the whole batch")
  d_batch = config.data.batch_size // g.pack
  group = min(m.minibatch_std_group or d_batch, d_batch)
  if m.minibatch_std and d_batch % group:
    raise ConfigError(
        f"config.model.minibatch_std_group={m.minibatch_std_group} must "
        f"divide the discriminator's batch of {d_batch} (batch_size / pack)")


def small(c) -> None:
  c.model.noise_dim = min(c.model.noise_dim, 16)
  ARCHS.get(c.model.arch).small(c.model[c.model.arch])


def num_classes(info: DatasetInfo) -> int:
  """Classes of a dataset with one integer label per example, else 0."""
  if "num_modes" in info.extras:  # stacked digits: a label per channel
    return 0
  return int(info.extras.get("num_classes", 0))


# -- the trainer ---------------------------------------------------------------

def _rngs(key: jax.Array | None):
  """The generator's rng streams from one key (None: none)."""
  if key is None:
    return None
  return {"noise": jax.random.fold_in(key, 0),
          "mixing": jax.random.fold_in(key, 1)}


def _logits(out):
  """A critic's output -> (logits, class logits or None)."""
  return out if isinstance(out, tuple) else (out, None)


class GanTrainer(base.Trainer):
  """Pure functions of one GAN configuration; the loop jits and shards them."""

  def __init__(self, config, info: DatasetInfo, constrain=lambda x: x):
    """`constrain` pins a batch-shaped array's sharding (noise, fakes)."""
    self.config = config
    self.info = info
    self.constrain = constrain
    g = config.gan
    self.conditional = bool(g.conditional)
    self.num_classes = num_classes(info) if self.conditional else 0
    m = config.model
    mbstd = m.minibatch_std_group if m.minibatch_std else None
    aux = self.num_classes if g.ac_weight > 0 else 0
    self.generator, self.discriminator = ARCHS.get(m.arch).build(
        config, info, self.num_classes, aux, mbstd)
    self.loss = losses.with_label_smoothing(losses.GAN_LOSSES.get(g.loss),
                                            g.label_smoothing)
    self.noise = NOISE.get(m.noise)
    o, steps = config.optim, config.train.num_steps
    d_updates = steps * g.n_critic
    g_tx = schedules.adam(o.g_lr, o.g_b1, o.g_b2, o.decay, steps)
    d_tx = schedules.adam(o.d_lr, o.d_b1, o.d_b2, o.decay, d_updates)
    # The unrolled updates are differentiated through: eps_root keeps the
    # derivative of sqrt(nu) finite where a gradient has always been 0.
    self.unroll_tx = schedules.adam(o.d_lr, o.d_b1, o.d_b2, o.decay,
                                    d_updates, eps_root=1e-16)
    if g.weight_clip > 0:
      d_tx, self.unroll_tx = (optax.chain(tx, schedules.clip_weights(
          g.weight_clip)) for tx in (d_tx, self.unroll_tx))
    z = jnp.zeros((2, m.noise_dim), jnp.float32)
    y = jnp.zeros((2,), jnp.int32) if self.conditional else None
    x = jnp.zeros((2, *tricks.packed_shape(info.example_shape, g.pack)),
                  jnp.float32)
    self.networks = {
        G: Network(self.generator, (z, y), g_tx, {"train": False},
                   ema=g.ema_decay > 0),
        D: Network(self.discriminator, (x, y), d_tx, {"train": False}),
    }
    self.terms = self._terms()
    self.policy = augment.parse_policy(g.augment)
    self.ada = g.ada_target > 0
    self.batches_per_step = g.n_critic
    self.scan_critic = g.n_critic > 1 and g.critic_loop == "scan"
    self.batch_size = config.data.batch_size
    self._g_update = self._make_g_update()
    # Progressive growing: one phase per stable or fading level; `grow` is
    # a phase's {level, alpha} (set on the phase's view, `at_phase`).
    self.schedule, self.grow = None, None
    if g.progressive.start_res:
      res = ARCHS.get(m.arch).levels(info.example_shape[0])
      self.schedule = progressive.Schedule(
          res, res.index(g.progressive.start_res), g.progressive.phase_steps)
      self.phase_starts = self.schedule.phase_starts

  def _make_g_update(self):
    g = self.config.gan
    if g.ema_decay > 0:
      return updates.with_ema(self._generator_update, G, g.ema_decay)
    return self._generator_update

  def at_phase(self, phase: int, step) -> "GanTrainer":
    """This trainer as it runs progressive phase `phase` at `step`: its
    networks at the phase's level, with the fade's alpha of that step."""
    level, _ = self.schedule.phases[phase]
    view = copy.copy(self)
    view.grow = {"level": level, "alpha": self.schedule.alpha(step, phase)}
    view._g_update = view._make_g_update()
    return view

  def _terms(self) -> list[objectives.Term]:
    g = self.config.gan
    penalty = penalties.PENALTIES.get(g.penalty)
    terms = [
        objectives.Term("d_loss", D, lambda i: self.loss.discriminator(
            i["real_logits"], i["fake_logits"])),
        objectives.Term("penalty", D, lambda i: penalty(
            i["critic"], i["real"], i["fake"], i["key"]),
                        weight=g.penalty_weight, every=g.penalty_every),
    ]
    if g.unroll_steps > 0:
      # Metz et al.'s surrogate f_K: the negated critic loss at the critic
      # unrolled k steps ahead (see `g_objective`).
      terms.append(objectives.Term("g_loss", G, lambda i: -(
          self.loss.discriminator(i["real_logits"], i["fake_logits"]))))
    else:
      terms.append(objectives.Term("g_loss", G, lambda i: self.loss.generator(
          i["fake_logits"])))
    if g.ac_weight > 0:
      ce = objectives.class_cross_entropy
      terms += [
          objectives.Term("d_ac", D, lambda i: (
              ce(i["real_class_logits"], i["real_label"])
              + ce(i["fake_class_logits"], i["fake_label"])),
                          weight=g.ac_weight),
          objectives.Term("g_ac", G, lambda i: ce(i["fake_class_logits"],
                                                  i["fake_label"]),
                          weight=g.ac_weight)]
    if g.g_regularizer != "none":
      terms.append(objectives.Term(
          "g_reg", G, objectives.G_REGULARIZERS.get(g.g_regularizer),
          weight=g.g_regularizer_weight, every=g.g_regularizer_every,
          state=tuple(objectives.G_REGULARIZER_STATE.get(g.g_regularizer,
                                                         {}))))
    return terms

  # -- pieces ---------------------------------------------------------------

  def draw_noise(self, key: jax.Array, n: int) -> jax.Array:
    """Noise for a global batch, drawn once and sharded on the batch axis, so
    that values do not depend on the number of devices."""
    return self.constrain(self.noise(key, (n, self.config.model.noise_dim)))

  def draw_labels(self, key: jax.Array, n: int) -> jax.Array | None:
    """Uniform class labels for n fakes (None when unconditional)."""
    if not self.conditional:
      return None
    return self.constrain(jax.random.randint(key, (n,), 0, self.num_classes))

  def generate(self, params, g_state, z, labels, train: bool,
               key: jax.Array | None = None):
    """Returns (samples, new generator state). `key` feeds the generator's
    rng streams ('noise', 'mixing': StyleGAN2's noise inputs and style
    mixing); generators without them ignore it."""
    variables = {"params": params, **g_state}
    rngs = _rngs(key)
    grow = self.grow or {}
    if train:
      return self.generator.apply(variables, z, labels, train=True,
                                  mutable=list(g_state), rngs=rngs, **grow)
    return self.generator.apply(variables, z, labels, train=False,
                                rngs=rngs, **grow), g_state

  def generate_styled(self, params, g_state, z, key: jax.Array, labels=None):
    """A style-based generator's training pass in its two halves: returns
    (samples, styles ws, new generator state, synthesis: ws -> samples with
    the noise of a key of its own). Growing progressively: at the phase's
    level and alpha, and ws only the styles that level uses (the
    path-length regulariser averages over them)."""
    grow = self.grow or {}
    ws, g_state = self.generator.apply(
        {"params": params, **g_state}, z, labels, train=True,
        method="mapping", level=grow.get("level"),
        mutable=list(g_state), rngs=_rngs(key))
    if grow:
      ws = ws[:, :stylegan2.num_ws(self.schedule.levels[grow["level"]])]
    variables = {"params": params, **g_state}
    synthesis = lambda k: lambda w: self.generator.apply(
        variables, w, method="synthesis", rngs=_rngs(k), **grow)
    fake = synthesis(key)(ws)
    return fake, ws, g_state, synthesis(jax.random.fold_in(key, 5))

  def d_input(self, x: jax.Array, key: jax.Array, step: jax.Array,
              aug_p=None):
    """What the discriminator sees of a batch x (B, ...): x augmented
    (`gan.augment`, each transform with probability `aug_p`, default
    `gan.augment_p`), plus instance noise (if on), packed into
    (B/pack, ..., pack*C)."""
    g = self.config.gan
    if self.policy:
      x = augment.augment(x, jax.random.fold_in(key, 7), self.policy,
                          g.augment_p if aug_p is None else aug_p)
    if g.instance_noise > 0:
      std = tricks.noise_std(g.instance_noise, g.instance_noise_anneal_steps,
                             step)
      x = tricks.instance_noise(x, key, std)
    return tricks.pack(x, g.pack)

  def critic(self, params, d_state, x, labels, per_example: bool = False):
    """Critic output in training mode; returns (output, new critic state).

    `per_example` holds the batch statistics fixed at this batch's values
    (models/layers.py), so that each output depends on its own example only:
    the gradient penalties' pass.
    """
    return self.discriminator.apply({"params": params, **d_state}, x, labels,
                                    train=True, per_example=per_example,
                                    mutable=list(d_state),
                                    **(self.grow or {}))

  def init(self, key: jax.Array) -> TrainState:
    aux = augment.ada_init(self.config.gan.augment_p) if self.ada else {}
    for name, value in objectives.G_REGULARIZER_STATE.get(
        self.config.gan.g_regularizer, {}).items():
      aux[name] = jnp.asarray(value, jnp.float32)
    return base.init_state(self.networks, key, aux=aux)

  def augment_p(self, state: TrainState):
    """The augmentation probability of this step: ADA's p, or the fixed
    `gan.augment_p`."""
    return state.aux["ada_p"] if self.ada else self.config.gan.augment_p

  # -- training -------------------------------------------------------------

  def _d_inputs(self, real, fake, key, step, aug_p=None):
    k_real, k_fake = jax.random.split(key)
    return (self.d_input(real, k_real, step, aug_p),
            self.d_input(fake, k_fake, step, aug_p))

  def _d_objective(self, d_params, d_state, real, fake, real_label,
                   fake_label, key, step):
    """The critic's terms on discriminator inputs (see `d_input`).

    Returns (objective, (new critic state, metrics)).
    """
    real_out, d_state = self.critic(d_params, d_state, real, real_label)
    fake_out, d_state = self.critic(d_params, d_state, fake, fake_label)
    (real_logits, real_cls), (fake_logits, fake_cls) = (_logits(real_out),
                                                        _logits(fake_out))
    inputs = {
        "real_logits": real_logits, "fake_logits": fake_logits,
        "real_class_logits": real_cls, "fake_class_logits": fake_cls,
        "real_label": real_label, "fake_label": fake_label,
        "real": real, "fake": fake, "key": key, "params": d_params,
        # Penalties see the critic's logits at the real labels (R1 and DRAGAN
        # perturb real data; WGAN-GP's interpolates keep the real labels),
        # with batch statistics held fixed: per-example input gradients.
        "critic": lambda x: _logits(self.critic(
            d_params, d_state, x, real_label, per_example=True)[0])[0],
    }
    total, metrics = objectives.objective(self.terms, D, inputs, step)
    metrics.update(d_real=jnp.mean(real_logits), d_fake=jnp.mean(fake_logits))
    if self.ada:  # ADA's overfitting signal, summed by train_step
      metrics["ada_sign"] = jnp.mean(jnp.sign(real_logits))
    return total, (d_state, metrics)

  def critic_update(self, carry, key, real, fake, real_label, fake_label,
                    step, tx, penalty_key=None, aug_p=None):
    """One critic update on raw real and fake batches.

    `carry` is (params, critic state, optimizer state); `key` draws the
    critic's input noise (fold_in 2) and, unless `penalty_key` is given, the
    penalty's randomness; `aug_p` is the augmentation probability. Returns
    (new carry, metrics).
    """
    params, d_state, opt = carry
    real_in, fake_in = self._d_inputs(real, fake, jax.random.fold_in(key, 2),
                                      step, aug_p)
    grads, (d_state, metrics) = jax.grad(self._d_objective, has_aux=True)(
        params, d_state, real_in, fake_in, real_label, fake_label,
        key if penalty_key is None else penalty_key, step)
    upd, opt = tx.update(grads, opt, params)
    return (optax.apply_updates(params, upd), d_state, opt), metrics

  def critic_step(self, state: TrainState, real, real_label, key):
    kz, kp = jax.random.split(key)
    fake_label = self.draw_labels(jax.random.fold_in(key, 4), real.shape[0])
    fake, _ = self.generate(state.params[G], state.model_state[G],
                            self.draw_noise(kz, real.shape[0]), fake_label,
                            train=True, key=jax.random.fold_in(kz, 1))
    fake = jax.lax.stop_gradient(fake)
    carry = (state.params[D], state.model_state[D], state.opt_state[D])
    (params, d_state, opt), metrics = self.critic_update(
        carry, key, real, fake, real_label, fake_label, state.step,
        self.networks[D].optimizer, penalty_key=kp,
        aug_p=self.augment_p(state))
    return state.replace(
        params={**state.params, D: params},
        model_state={**state.model_state, D: d_state},
        opt_state={**state.opt_state, D: opt}), metrics

  def g_objective(self, g_params, state: TrainState, z, labels, real,
                  real_label, key):
    """The generator's terms on G(z) against the critic.

    With `gan.unroll_steps` = k > 0 its adversarial term is Metz et al.'s
    surrogate f_K instead: the negated critic loss (without penalty) on
    `real` and G(z) at the critic after k of its own updates on the same
    batches (`updates.unroll` of `critic_update`, differentiated through, as
    in the authors' released code, which unrolls Adam). For the
    cross-entropy losses that is the minimax value function; its real-data
    term depends on G through the unrolled updates, which is what lets G
    anticipate the critic.

    A style-based generator (STYLE_ARCHS) also hands its terms its styles
    `ws` and its `synthesis` function (the path-length regulariser), and
    the regulariser's running state `aux`.

    Returns (objective, (new generator state, new critic state, metrics,
    new aux entries)).
    """
    g = self.config.gan
    inputs = {"params": g_params, "fake_label": labels, "key": key,
              "aux": state.aux, "pl_decay": g.pl_decay,
              "pl_batch_shrink": g.pl_batch_shrink}
    g_key = jax.random.fold_in(key, 6)
    if self.config.model.arch in STYLE_ARCHS:
      fake, inputs["ws"], g_state, inputs["synthesis"] = self.generate_styled(
          g_params, state.model_state[G], z, g_key, labels)
    else:
      fake, g_state = self.generate(g_params, state.model_state[G], z,
                                    labels, train=True, key=g_key)
    d_params, d_state = state.params[D], state.model_state[D]
    aug_p = self.augment_p(state)
    if self.config.gan.unroll_steps > 0:
      look_ahead = updates.unroll(
          functools.partial(self.critic_update, aug_p=aug_p),
          self.config.gan.unroll_steps)
      d_params, ahead_state, _ = look_ahead(
          (d_params, d_state, state.opt_state[D]),
          jax.random.fold_in(key, 3), real, fake, real_label, labels,
          state.step, self.unroll_tx)
      real_in, fake_in = self._d_inputs(real, fake, jax.random.fold_in(key, 2),
                                        state.step, aug_p)
      real_out, ahead_state = self.critic(d_params, ahead_state, real_in,
                                          real_label)
      fake_out, _ = self.critic(d_params, ahead_state, fake_in, labels)
      inputs["real_logits"] = _logits(real_out)[0]
      new_d_state = d_state  # the look-ahead is not an update of the critic
    else:
      fake_in = self.d_input(fake, jax.random.fold_in(key, 2), state.step,
                             aug_p)
      fake_out, new_d_state = self.critic(d_params, d_state, fake_in, labels)
    inputs["fake_logits"], inputs["fake_class_logits"] = _logits(fake_out)
    total, metrics, new_aux = objectives.objective_and_updates(
        self.terms, G, inputs, state.step)
    metrics.update(new_aux)
    return total, (g_state, new_d_state, metrics, new_aux)

  def _generator_update(self, state: TrainState, key, real, real_label):
    z = self.draw_noise(key, self.batch_size)
    labels = self.draw_labels(jax.random.fold_in(key, 4), self.batch_size)
    grads, (g_state, d_state, metrics, new_aux) = jax.grad(
        self.g_objective, has_aux=True)(state.params[G], state, z, labels,
                                        real, real_label, key)
    state = base.apply_gradients(self.networks[G], state, G, grads)
    return state.replace(model_state={**state.model_state, G: g_state,
                                      D: d_state},
                         aux={**state.aux, **new_aux}), metrics

  def _critic_step_ada(self, state: TrainState, real, real_label, key):
    """`critic_step`, then ADA's overfitting signal added to the interval's
    sums."""
    state, m = self.critic_step(state, real, real_label, key)
    if self.ada:
      state = state.replace(aux=augment.ada_accumulate(
          state.aux, m.pop("ada_sign"), real.shape[0]))
    return state, m

  def _scanned_critic(self, state: TrainState, x, labels, keys):
    """The n_critic updates as one `lax.scan` (one copy of the update in
    the program: about half the compile time of the unrolled loop for
    WGAN-GP's 5). Returns (state, the last update's metrics)."""
    def body(state, inputs):
      real, label, key = inputs
      return self._critic_step_ada(state, real, label, key)
    state, metrics = jax.lax.scan(body, state, (x, labels, keys))
    return state, jax.tree.map(lambda m: m[-1], metrics)

  def train_step(self, state: TrainState, batch: dict[str, jax.Array],
                 phase: int = 0):
    """batch['x']: (n_critic, B, ...). Returns (new state, scalar metrics).

    Growing progressively, `phase` (static) picks the level; the real
    images are average-pooled to its resolution on the device (and mixed
    with the lower level's during a fade, `progressive.real_at`), so the
    data pipeline and the batch shapes the loop sees never change. Metrics
    then add `pg_level` (the level, 0 at the lowest resolution) and
    `pg_alpha` (the fade's weight of the new level; 1 when stable).
    """
    if self.schedule is None:
      return self._step(state, batch)
    view = self.at_phase(phase, state.step)
    level, alpha = view.grow["level"], view.grow["alpha"]
    if phase and self.config.gan.progressive.reset_optimizer:
      state = state.replace(opt_state=schedules.reset_adam_moments(
          state.opt_state, state.step == self.phase_starts[phase - 1]))
    res = self.schedule.levels[level]
    x = jax.vmap(lambda b: progressive.real_at(b, res, alpha))(batch["x"])
    state, metrics = view._step(state, {**batch, "x": x})
    metrics.update(pg_level=jnp.float32(level),
                   pg_alpha=jnp.float32(1.0) if alpha is None else alpha)
    return state, metrics

  def _step(self, state: TrainState, batch: dict[str, jax.Array]):
    key = jax.random.fold_in(state.key, state.step)
    critic_keys = jax.random.split(jax.random.fold_in(key, 0),
                                   self.batches_per_step)
    labels = batch.get("label") if self.conditional else None
    label = lambda i: None if labels is None else labels[i]
    if self.scan_critic:
      state, d_metrics = self._scanned_critic(state, batch["x"], labels,
                                              critic_keys)
    else:
      # Unrolled: an architecture with plain convolutions in its critic runs
      # them many times slower inside a while loop on XLA:CPU.
      for i in range(self.batches_per_step):
        state, d_metrics = self._critic_step_ada(state, batch["x"][i],
                                                 label(i), critic_keys[i])
    state, g_metrics = self._g_update(state, jax.random.fold_in(key, 1),
                                      batch["x"][-1], label(-1))
    metrics = dict(d_metrics)  # the last critic update's
    metrics.update(g_metrics)
    if self.loss.estimates_distance:
      metrics["w_distance"] = metrics["d_real"] - metrics["d_fake"]
    if self.ada:
      g = self.config.gan
      metrics.update(ada_p=state.aux["ada_p"], ada_rt=augment.ada_rt(
          state.aux))
      state = state.replace(aux=augment.ada_update(
          state.aux, state.step, g.ada_interval, g.ada_target,
          self.batches_per_step * batch["x"].shape[1], g.ada_kimg))
    return state.replace(step=state.step + 1), metrics

  # -- what evaluators can ask for ----------------------------------------------

  def sample(self, state: TrainState, key: jax.Array,
             n: int) -> dict[str, jax.Array]:
    """n samples {'x', and for conditional models 'label'} from the
    generator (EMA weights when ema_decay > 0). Labels cycle through the
    classes (0, 1, ..., K-1, 0, ...): a uniform, balanced draw.

    Growing progressively, the samples come from the phase of the next step
    (`phase_of(state.step)`, picked inside the program by `lax.switch`) at
    its resolution, upsampled (nearest) to the full size, so every evaluator
    keeps working: before the last phase, FID and the pictures judge blocky
    low-resolution images against full-resolution data (a high FID that
    mostly measures the missing detail); compare FIDs only from the final,
    full-resolution phase on.
    """
    if self.schedule is None:
      return self._sample(state, key, n)
    size = self.info.example_shape[0]

    def branch(phase):
      def at(state, key):
        out = self.at_phase(phase, state.step)._sample(state, key, n)
        return {**out, "x": progressive.resize(out["x"], size)}
      return at
    phase = jnp.searchsorted(jnp.asarray(self.phase_starts, jnp.int32),
                             state.step, side="right")
    return jax.lax.switch(phase, [branch(p) for p in
                                  range(self.num_phases)], state, key)

  def _sample(self, state: TrainState, key: jax.Array,
              n: int) -> dict[str, jax.Array]:
    """`sample` at the networks' current level (see there).

    The EMA generator's batch norm uses its own standing statistics: the
    running averages in the state belong to the live weights, and with the
    EMA weights they give wrong activations (on the 2D ring: 0.3%
    high-quality samples against 35% with its own statistics).
    """
    params, g_state = state.params[G], state.model_state[G]
    labels = None
    if self.conditional:
      labels = self.constrain(jnp.arange(n, dtype=jnp.int32)
                              % self.num_classes)
    if G in state.ema:
      params = state.ema[G]
      g_state = self.standing_stats(params, g_state, labels,
                                    jax.random.fold_in(key, 1), n)
    x, _ = self.generate(params, g_state, self.draw_noise(key, n), labels,
                         train=False, key=jax.random.fold_in(key, 3))
    out = {"x": x}
    if labels is not None:
      out["label"] = labels
    return out

  def standing_stats(self, params, g_state, labels, key: jax.Array, n: int):
    """Batch-norm statistics of the generator `params` over n noise draws
    (BigGAN's "standing statistics"): one training-mode pass from zeroed
    running averages leaves (1 - BN_MOMENTUM) * the batch statistics. Only
    batch-norm averages (leaves named `mean` and `var`) are recomputed; every
    other state leaf (spectral-norm vectors, tracked averages) is kept."""
    is_bn = lambda path: getattr(path[-1], "key", None) in ("mean", "var")
    if not any(is_bn(p) for p, _ in
               jax.tree_util.tree_flatten_with_path(g_state)[0]):
      return g_state  # no batch norm (e.g. StyleGAN2's w_avg only)
    zeros = jax.tree_util.tree_map_with_path(
        lambda p, v: jnp.zeros_like(v) if is_bn(p) else v, g_state)
    _, new = self.generate(params, zeros, self.draw_noise(key, n), labels,
                           train=True, key=jax.random.fold_in(key, 1))
    return jax.tree_util.tree_map_with_path(
        lambda p, fresh, old: fresh / (1.0 - BN_MOMENTUM) if is_bn(p)
        else old, new, g_state)


base.TRAINERS.add("gan", base.TrainerSpec(
    create=GanTrainer, defaults=defaults, validate=validate, small=small,
    validate_data=validate_data,
    model_config=model_config))

