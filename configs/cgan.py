r"""Class-conditional GAN: the DCGAN of configs/dcgan.py with labels in both
networks: class-conditional batch norm in the generator (a per-class scale
and shift, de Vries et al. 2017) and a projection discriminator (Miyato &
Koyama 2018: logit = psi(phi(x)) + <embed(y), phi(x)>). Samples are drawn for
uniform labels; the sample grid has one row per class, and evaluation
reports the digit classifier's accuracy on the conditional samples
(eval/class_accuracy) and the intra-class domain FID (eval/intra_fid).

  python -m gen_jax.main --config=configs/cgan.py:digits --workdir=runs/cgan

AC-GAN (Odena et al. 2017) instead of the projection: an auxiliary
classifier head on the critic, its cross-entropy added to both objectives:
  python -m gen_jax.main --config=configs/cgan.py:digits --workdir=runs/acgan \
      --config.model.d_cond=none --config.gan.ac_weight=1.0
(both together: keep d_cond=projection and set ac_weight).

ARG: a dataset with one class label per example (digits, mnist,
fashion_mnist, cifar10) and optionally `small` (tests).
"""

from gen_jax import config_lib
from gen_jax.trainers import gan


def get_config(arg=None):
  dataset, small = config_lib.parse_arg(arg, "digits")
  c = config_lib.base("gan", dataset)
  c.data.image_size = config_lib.gan_image_size(dataset)
  c.data.batch_size = 64

  c.model = gan.model_config("dcgan")
  c.model.d_cond = "projection"
  c.gan.loss = "non_saturating"
  c.gan.conditional = True
  c.optim = gan.two_adams(lr=2e-4, b1=0.5, b2=0.999)

  c.train.num_steps = 4000
  c.train.eval_every = 1000
  c.train.checkpoint_every = 1000
  c.train.num_eval_samples = 1000
  if small:
    config_lib.make_small(c)
  return c
