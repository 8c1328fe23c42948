r"""SNGAN (Miyato et al. 2018): the ResNet generator and spectrally normalised
ResNet critic (gen_jax/models/resnet.py), hinge loss, n_critic 5, Adam
(0, 0.9). Unconditional, as in the paper's Table 2; the class-conditional
SNGAN (cGAN-PD: per-class batch norm in G, projection critic, Miyato &
Koyama 2018) is --config.gan.conditional=True on a labelled dataset.

  python -m gen_jax.main --config=configs/sngan.py:digits --workdir=runs/sngan

ARG: a dataset name and optionally `small` (tests):

- digits / stacked_digits (16 px, embedded): widths 32 (paper 256/128),
  n_critic 2 and 2,000 steps, so that a run takes CPU minutes.
- cifar10 (32 px): Mimicry's SNGAN (Lee & Town 2020): G width 256, D width
  128, D blocks down, down, -, -; batch 64; Adam 2e-4, betas (0, 0.9), both
  networks; n_critic 5; linear decay to 0 over 100K generator steps.
  Published: FID 16.77 +- 0.04, IS 7.97 +- 0.06 (Mimicry README, CIFAR-10
  train split, 50K generated vs 50K real, Inception features); Miyato et al.
  2018, Table 2 (ResNet, 50K G updates, no decay): FID 21.7 +- 0.21,
  IS 8.22 +- 0.05 (10K generated vs 5K real test images). cGAN-PD on
  CIFAR-10 (Mimicry, same protocol): FID 10.84 +- 0.03.
- celeb_a (64 px): Mimicry's sngan_64: G 1024 -> 512 -> 256 -> 128 -> 64,
  D 64 -> ... -> 1024 (five blocks, the last at 4x4), n_critic 5, linear
  decay over 100K steps. Published: FID 5.71 +- 0.02 (Mimicry README, all
  of CelebA, 50K vs 50K).

Evaluation here uses train.num_eval_samples (and config.inception for the
Inception FID); match the protocol above before comparing numbers.
"""

from gen_jax import config_lib
from gen_jax.trainers import gan


def get_config(arg=None):
  dataset, small = config_lib.parse_arg(arg, "digits")
  c = config_lib.base("gan", dataset)
  c.data.image_size = config_lib.gan_image_size(dataset)
  c.data.batch_size = 64

  c.model = gan.model_config("resnet")
  c.model.noise_dim = 128
  c.gan.loss = "hinge"
  c.gan.n_critic = 5
  c.optim = gan.two_adams(lr=2e-4, b1=0.0, b2=0.9)
  c.optim.decay = "linear"
  c.train.num_steps = 100_000
  c.train.eval_every = 5000
  c.train.checkpoint_every = 5000
  c.train.num_eval_samples = 10_000
  a = c.model.resnet
  if dataset == "celeb_a":
    a.g_width, a.g_mult = 64, (16, 8, 4, 2, 1)
    a.d_width, a.d_mult = 64, (1, 2, 4, 8, 16)
    a.d_down = (True, True, True, True, False)
  elif c.data.image_size == 16:   # the embedded digits: CPU minutes
    a.g_width = a.d_width = 32
    a.d_mult, a.d_down = (1, 1, 1), (True, True, False)
    c.gan.n_critic = 2
    c.optim.decay = "constant"
    c.train.num_steps = 2000
    c.train.eval_every = c.train.checkpoint_every = 500
    c.train.num_eval_samples = 1000
  if small:
    config_lib.make_small(c)
    c.gan.n_critic = 2  # still several critic updates, compiled in less time
  return c
