r"""BigGAN (Brock et al. 2019) at CIFAR scale: the SNGAN ResNet
(gen_jax/models/resnet.py) with spectral norm in G too, a shared class
embedding feeding every generator batch norm's gain and bias, the latent z
split over the blocks (hierarchical latents), orthogonal regularisation of
G (beta 1e-4), an EMA of G sampled with standing statistics, a projection
critic and the hinge loss. Class-conditional on labelled data; on
stacked_digits (no labels) the batch norms are conditioned on the z chunks
alone.

  python -m gen_jax.main --config=configs/biggan.py:digits --workdir=runs/biggan

Self-attention (off at CIFAR scale, as in the authors' CIFAR script):
--config.model.resnet.g_attention=16 --config.model.resnet.d_attention=16.

ARG: a dataset name and optionally `small` (tests):

- digits / stacked_digits (16 px): widths 32, shared embedding 32, z 120
  (3 x 40), n_critic 2, EMA 0.99, 2,000 steps.
- cifar10 (32 px): BigGAN-PyTorch's CIFAR-10 settings (launch_cifar_ema.sh):
  widths 256 (ch 64 x 4) in G and D, batch 50, n_critic 4, Adam 2e-4 for
  both networks with betas (0, 0.999), EMA 0.9999; with the paper's shared
  embedding (128), hierarchical z (128 = 4 x 32) and orthogonal
  regularisation, which that script leaves off. Published (Brock et al.
  2019, CIFAR-10, class-conditional): IS 9.22, FID 14.73, as quoted in
  PyTorch-StudioGAN's README benchmark table "CIFAR10 (3x32x32)" (checked
  there; its IS from the official TensorFlow code). StudioGAN's own
  BigGAN-Mod (its modified BigGAN) in the same table: IS 9.746, FID 8.034,
  computed from 10K generated vs the 10K test images (`-ref "test"`); its
  SNGAN there: IS 8.677, FID 13.248. To compare a run here with those, set
  config.inception.num_samples=10000 and reference='eval' (the defaults;
  the eval split of cifar10 is its test set).
  Provenance of the settings: the released script could not be read from
  this machine (the public index holds only early versions of
  BigGAN-PyTorch, whose CIFAR script trains with batch 64, one D step, G lr
  1e-4 and D lr 4e-4); the settings above are that script's as quoted by
  later work, not re-checked here.
"""

from gen_jax import config_lib
from gen_jax.trainers import gan


def get_config(arg=None):
  dataset, small = config_lib.parse_arg(arg, "digits")
  c = config_lib.base("gan", dataset)
  c.data.image_size = config_lib.gan_image_size(dataset)
  c.data.batch_size = 50

  c.model = gan.model_config("resnet")
  c.model.noise_dim = 128
  c.gan.loss = "hinge"
  c.gan.n_critic = 4
  c.gan.conditional = dataset != "stacked_digits"
  c.gan.ema_decay = 0.9999
  c.gan.g_regularizer = "orthogonal"
  c.gan.g_regularizer_weight = 1e-4
  c.optim = gan.two_adams(lr=2e-4, b1=0.0, b2=0.999)
  a = c.model.resnet
  a.g_width = a.d_width = 256
  a.g_spectral_norm = True
  a.shared_dim = 128
  a.hierarchical = True
  c.train.num_steps = 100_000
  c.train.eval_every = 5000
  c.train.checkpoint_every = 5000
  c.train.num_eval_samples = 10_000
  if c.data.image_size == 16:   # the embedded digits: CPU minutes
    c.data.batch_size = 64
    c.model.noise_dim = 120      # 3 chunks of 40
    a.g_width = a.d_width = 32
    a.shared_dim = 32
    a.d_mult, a.d_down = (1, 1, 1), (True, True, False)
    c.gan.n_critic = 2
    # 0.999 would still weigh the initial weights 0.999^2000 = 14% at the
    # end (BigGAN starts its EMA after 1000 steps); 0.99: ~100 steps.
    c.gan.ema_decay = 0.99
    c.train.num_steps = 2000
    c.train.eval_every = c.train.checkpoint_every = 500
    c.train.num_eval_samples = 1000
  if small:
    config_lib.make_small(c)
    c.gan.n_critic = 2  # still several critic updates, compiled in less time
  return c
