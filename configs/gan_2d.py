r"""A GAN on 2D Gaussian mixtures (the PacGAN protocol: ring of 8, grid of 25).

PacGAN's 2D networks: G is 4 x 400 ReLU with batch norm on 2-d Gaussian noise;
D is 3 maxout layers of 200 units x 5 pieces; weights N(0, 0.02); Adam 1e-4,
beta1 0.8; batch 100. Evaluation: modes captured, % high quality, reverse KL on 2,500
samples, and a scatter plot over the data.

  python -m gen_jax.main --config=configs/gan_2d.py:ring --workdir=runs/ring

ARG: ring, grid or swiss_roll, and optionally `small` (tests).

Mode-collapse remedies (all off by default; any GAN config has them):
  --config.gan.pack=2                  PacGAN2: the critic judges packs of 2
                                       (batch_size must be divisible by it;
                                       PacGAN's protocol: batch_size=100*pack)
  --config.gan.unroll_steps=5          unrolled GAN (Metz et al. 2017)
  --config.model.minibatch_std=True    minibatch std feature (Karras et al.),
                                       groups of --config.model.minibatch_std_group
  --config.gan.instance_noise=0.1      noise std on the critic's inputs, with
  --config.gan.instance_noise_anneal_steps=5000  a linear decay to 0
  --config.gan.label_smoothing=0.1     real target 0.9 (cross-entropy losses)
  --config.model.d_norm=spectral       spectral normalisation
  --config.gan.penalty=r1 --config.gan.penalty_weight=1   (or dragan)
  --config.gan.ema_decay=0.999         sample with an EMA of G's weights
Many seeds in one program: --config.train.num_seeds=8 (seeds seed..seed+7).
"""

from gen_jax import config_lib
from gen_jax.trainers import gan


def get_config(arg=None):
  dataset, small = config_lib.parse_arg(arg, "ring")
  c = config_lib.base("gan", dataset)
  c.data.batch_size = 100
  c.data.value_range = (-1.0, 1.0)  # unused by points; kept for uniformity

  c.model = gan.model_config("mlp")
  c.model.noise_dim = 2
  c.model.mlp.d_maxout_pieces = 5
  c.model.mlp.init_std = 0.02
  c.gan.loss = "non_saturating"
  c.optim = gan.two_adams(lr=1e-4, b1=0.8, b2=0.999)

  c.train.num_steps = 10000
  c.train.log_every = 100
  c.train.eval_every = 2000
  c.train.checkpoint_every = 2000
  if small:
    config_lib.make_small(c)
  return c
