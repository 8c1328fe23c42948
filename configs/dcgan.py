r"""DCGAN (Radford et al. 2016): non-saturating loss, batch norm, Adam 2e-4.

  python -m gen_jax.main --config=configs/dcgan.py:digits --workdir=runs/dcgan

ARG: a dataset name (digits, stacked_digits, mnist, cifar10, ..., folder:PATH)
and optionally `small` for a tiny, fast variant (tests).

PacDCGAN2 on stacked digits (the critic sees 2 images stacked on channels):
  python -m gen_jax.main --config=configs/dcgan.py:stacked_digits \
      --workdir=runs/pacdcgan2 --config.gan.pack=2 --config.data.batch_size=128
The other remedies (unroll_steps, minibatch_std, instance_noise,
label_smoothing, d_norm=spectral, r1/dragan penalties, ema_decay) and
train.num_seeds are listed in configs/gan_2d.py.
"""

from gen_jax import config_lib
from gen_jax.trainers import gan


def get_config(arg=None):
  dataset, small = config_lib.parse_arg(arg, "digits")
  c = config_lib.base("gan", dataset)
  c.data.image_size = config_lib.gan_image_size(dataset)
  c.data.batch_size = 64

  c.model = gan.model_config("dcgan")
  c.gan.loss = "non_saturating"
  c.optim = gan.two_adams(lr=2e-4, b1=0.5, b2=0.999)

  c.train.num_steps = 4000
  c.train.eval_every = 1000
  c.train.checkpoint_every = 1000
  c.train.num_eval_samples = 1000
  if small:
    config_lib.make_small(c)
  return c
