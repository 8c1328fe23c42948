r"""WGAN-GP (Gulrajani et al. 2017, Algorithm 1): Wasserstein loss, gradient
penalty lambda 10, n_critic 5, Adam 1e-4 with beta1 0 and beta2 0.9, no batch
norm in the critic (layer norm).

  python -m gen_jax.main --config=configs/wgan_gp.py:digits --workdir=runs/wgan \
      --config.train.num_steps=3000

ARG: a dataset name and optionally `small` (tests).
"""

from gen_jax import config_lib
from gen_jax.trainers import gan


def get_config(arg=None):
  dataset, small = config_lib.parse_arg(arg, "digits")
  c = config_lib.base("gan", dataset)
  c.data.image_size = config_lib.gan_image_size(dataset)
  c.data.batch_size = 64

  c.model = gan.model_config("dcgan")
  c.model.d_norm = "layer"
  c.gan.loss = "wasserstein"
  c.gan.penalty = "wgan_gp"
  c.gan.penalty_weight = 10.0
  c.gan.n_critic = 5
  c.optim = gan.two_adams(lr=1e-4, b1=0.0, b2=0.9)

  c.train.num_steps = 2000
  c.train.eval_every = 500
  c.train.checkpoint_every = 500
  c.train.num_eval_samples = 1000
  if small:
    config_lib.make_small(c)
  return c
