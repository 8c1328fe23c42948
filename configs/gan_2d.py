r"""A GAN on 2D Gaussian mixtures (the PacGAN protocol: ring of 8, grid of 25).

PacGAN's 2D networks: G is 4 x 400 ReLU with batch norm on 2-d Gaussian noise;
D is an MLP (here 3 x 200 LeakyReLU rather than maxout); Adam 1e-4, beta1 0.8;
batch 100. Evaluation: modes captured, % high quality, reverse KL on 2,500
samples, and a scatter plot over the data.

  python -m gen_jax.main --config=configs/gan_2d.py:ring --workdir=runs/ring

ARG: ring, grid or swiss_roll, and optionally `small` (tests).
"""

from gen_jax import config_lib


def get_config(arg=None):
  dataset, small = config_lib.parse_arg(arg, "ring")
  c = config_lib.base("gan", dataset)
  c.data.batch_size = 100
  c.data.value_range = (-1.0, 1.0)  # unused by points; kept for uniformity

  c.model = config_lib.gan_model("mlp")
  c.model.noise_dim = 2
  c.gan = config_lib.gan_defaults(loss="non_saturating", penalty="none")
  c.optim = config_lib.two_adams(lr=1e-4, b1=0.8, b2=0.999)

  c.train.num_steps = 10000
  c.train.log_every = 100
  c.train.eval_every = 2000
  c.train.checkpoint_every = 2000
  if small:
    config_lib.make_small(c)
  return c
