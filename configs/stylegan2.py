r"""StyleGAN2 (Karras et al. 2020): mapping network, modulated and
demodulated convolutions, noise inputs, style mixing, FIR [1, 3, 3, 1]
resampling, a skip generator and a residual critic with minibatch std
(gen_jax/models/stylegan2.py); the
non-saturating loss, lazy R1 on reals (every 16 steps, weight x 16), the
path-length regulariser on G (every 4 steps, weight 2 x 4, half the batch;
its running mean `pl_mean` in state.aux), Adam (0, 0.99) and an EMA of G
for sampling (and evaluation). Truncation for samples:
--config.model.stylegan2.truncation=0.7 (1.0: off).

  python -m gen_jax.main --config=configs/stylegan2.py:digits --workdir=runs/sg2

The official code runs each lazy regulariser as an extra optimizer step and
so rescales Adam (lr * c, betas ** c, c = k / (k + 1)); here the lazy term
is added to that step's main objective (objectives.py), so no optimizer
step is added and Adam is left as configured.

ARG: a dataset name and optionally `small` (tests):

- digits / stacked_digits (16 px, embedded): z = w = 128, 8 mapping
  layers, feature maps 64 at 4x4 -> 32 -> 16 at 16x16 in G and D, batch 32,
  R1 gamma = 0.0002 res^2 / batch (the official 'auto' rule), EMA half-life
  10 kimg (the 'auto' rule: batch * 10 / 32 kimg), 1,500 steps: about 10
  CPU minutes, domain FID 92.8 (README). Not a published setting.
  Class-conditional: --config.gan.conditional=True. Grown progressively:
  --config.gan.progressive.start_res=8 --config.gan.progressive.phase_steps=
  200 (README, "Progressive growing": on the digits it did worse than not
  growing in every run tried). Mixed precision: --config.model.compute_dtype=bfloat16.
- cifar10 (32 px): stylegan2-ada-pytorch's `--cfg=cifar` (train.py
  cfg_specs): batch 64, minibatch-std groups of 32, feature maps 512 at
  every resolution, Adam 0.0025 (0, 0.99), R1 gamma 0.01, EMA half-life
  500 kimg, 2 mapping layers, and, as that config does, no path-length
  regulariser and no style mixing (its critic is the 'orig' one; here the
  residual). Unconditional, as this preset runs; the published run is
  class-conditional (--config.gan.conditional=True). Published, checked
  against the StyleGAN2-ADA README and abstract (Karras et al. 2020b):
  class-conditional CIFAR-10 with `--cfg=cifar --aug=ada`, FID 2.42 (the
  record it set, from 5.59), as `fid50k_full`: 50K generated images against
  the whole 50K-image training set (here: config.inception.num_samples=50000,
  reference='train'). That run uses ADA's 18-transform pipeline, which
  gen_jax's `ada` (DiffAugment's transforms under ADA's p) is not, so a run
  here is not that setting. PyTorch-StudioGAN's README (table "CIFAR10
  (3x32x32) using StyleGAN2": 50K generated vs the 50K training images)
  quotes the ADA paper's StyleGAN2 without ADA at FID 6.96 (IS 9.53) and
  reports its own StyleGAN2 at FID 3.889 (IS 10.149), the difference, it
  says, from random flips in its pipeline; 2.316 with ADA.
- celeb_a (64 px): the official 'auto' rules at 64 px and batch 64: feature
  maps 512 (4x4 to 32x32) and 256 at 64x64, minibatch-std groups of 4,
  Adam 0.0025 (0, 0.99), R1 gamma 0.0002 * 64^2 / 64 = 0.0128, EMA
  half-life 20 kimg, 8 mapping layers, path length and mixing on.
  No published StyleGAN2 number at this setting was found to compare with.

Evaluation here uses train.num_eval_samples (and config.inception for the
Inception FID); match a published protocol before comparing numbers.
"""

from gen_jax import config_lib
from gen_jax.trainers import gan


def _ema_decay(half_life_kimg: float, batch: int) -> float:
  """Per-step EMA decay with a half-life of that many thousand images."""
  return 0.5 ** (batch / (half_life_kimg * 1000.0))


def get_config(arg=None):
  dataset, small = config_lib.parse_arg(arg, "digits")
  c = config_lib.base("gan", dataset)
  size = c.data.image_size = config_lib.gan_image_size(dataset)
  c.data.batch_size = 64

  c.model = gan.model_config("stylegan2")
  c.model.noise_dim = 512
  a = c.model.stylegan2
  c.gan.loss = "non_saturating"
  c.gan.penalty = "r1"
  c.gan.penalty_every = 16
  c.gan.penalty_weight = 0.0002 * size ** 2 / c.data.batch_size
  c.gan.g_regularizer = "path_length"
  c.gan.g_regularizer_weight = 2.0
  c.gan.g_regularizer_every = 4
  c.gan.pl_batch_shrink = 2
  c.gan.pl_decay = 0.01
  c.optim = gan.two_adams(lr=0.0025, b1=0.0, b2=0.99)
  c.train.num_steps = 100_000
  c.train.eval_every = 5000
  c.train.checkpoint_every = 5000
  c.train.num_eval_samples = 10_000
  if dataset == "cifar10":
    a.g_width = a.d_width = 8192   # channel_base 32768: 512 everywhere
    a.max_width = 512
    a.mapping_layers = 2
    a.mbstd_group = 32
    a.mixing = 0.0
    c.gan.penalty_weight = 0.01
    c.gan.g_regularizer = "none"
    c.gan.g_regularizer_weight = 0.0
    c.gan.ema_decay = _ema_decay(500, c.data.batch_size)
  elif size == 16:   # the embedded digits: CPU minutes
    c.data.batch_size = 32
    c.model.noise_dim = a.w_dim = 128
    a.g_width = a.d_width = a.max_width = 64
    c.gan.penalty_weight = 0.0002 * size ** 2 / c.data.batch_size
    c.gan.ema_decay = _ema_decay(c.data.batch_size * 10 / 32,
                                 c.data.batch_size)
    c.train.num_steps = 1500
    c.train.eval_every = c.train.checkpoint_every = 500
    c.train.num_eval_samples = 1000
  else:              # 'auto' rules (stylegan2-ada-pytorch) at 64 px
    # channel_base 16384 (fmaps 0.5) = 4 * 4096: 4096 * 4 / r, capped at
    # 512: 512 from 4x4 to 32x32, 256 at 64x64.
    a.g_width = a.d_width = 4096
    a.max_width = 512
    c.gan.ema_decay = _ema_decay(c.data.batch_size * 10 / 32,
                                 c.data.batch_size)
  if small:
    config_lib.make_small(c)
    c.model.noise_dim = 16
    c.gan.penalty_every = 2   # the lazy terms run within the 4 steps
    c.gan.g_regularizer_every = 2
  return c
