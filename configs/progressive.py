r"""Progressive growing (Karras et al. 2018) of the DCGAN networks.

configs/dcgan.py's networks, loss and Adam, grown from 4x4 to the full size
one level at a time (`config.gan.progressive`; models/progressive.py): each
new level fades in over `phase_steps` steps (alpha 0 -> 1) and is then
trained alone for as many; the last level trains until the end. Not ProGAN's
own networks (no pixel norm, equalised learning rate or WGAN-GP): the
schedule alone, on the DCGAN (or, with config.model = gan.model_config(
'resnet'), the SNGAN ResNet).

  python -m gen_jax.main --config=configs/progressive.py:digits \
      --workdir=runs/progressive

ARG: a dataset name (digits, mnist, cifar10, ...) and optionally `small`
(tests). Digits (16 px): 4 -> 8 -> 16 px, 400 steps per phase (full
resolution from step 1600), 3,000 steps. Evaluations before step 1600 judge
upsampled low-resolution samples: their FID is high by construction.
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
  c.gan.progressive.start_res = 7 if c.data.image_size == 28 else 4
  c.gan.progressive.phase_steps = 400

  c.train.num_steps = 3000
  c.train.eval_every = 800
  c.train.checkpoint_every = 800
  c.train.num_eval_samples = 1000
  if small:
    config_lib.make_small(c)
    # 3 phases in 4 steps: stable 8 px, fade into 16 px, stable 16 px.
    c.gan.progressive.start_res = c.data.image_size // 2
    c.gan.progressive.phase_steps = 1
  return c
