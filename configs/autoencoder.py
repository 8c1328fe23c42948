r"""Plain and denoising autoencoders (config.ae.objective='reconstruction'):
a deterministic MLP encoder and decoder, Bernoulli cross-entropy on the
digits' grey values. There is no prior, so no samples: the pictures are
reconstructions, interpolations and traversals.

  python -m gen_jax.main --config=configs/autoencoder.py:digits --workdir=runs/ae
  python -m gen_jax.main --config=configs/autoencoder.py:digits,denoising \
      --workdir=runs/dae

ARG: a dataset name (digits, mnist, ...), optionally `denoising` (masking
noise, p = 0.3; change with --config.ae.corruption=gaussian|masking|
salt_pepper --config.ae.corruption_level=...) and `small` (tests).
"""

from gen_jax import config_lib
from gen_jax.trainers import vae

RESOLUTION = {"mnist": 28, "binarized_mnist": 28, "fashion_mnist": 28}


def get_config(arg=None):
  tokens = [t for t in (arg or "").split(",") if t]
  denoising = "denoising" in tokens
  dataset, small = config_lib.parse_arg(
      ",".join(t for t in tokens if t != "denoising"), "digits")
  c = config_lib.base("vae", dataset)
  c.data.image_size = RESOLUTION.get(dataset, 16)
  c.data.value_range = (0.0, 1.0)
  c.data.batch_size = 128

  c.model = vae.model_config("mlp")
  c.model.latent_dim = 16
  c.optim = vae.one_adam(lr=1e-3)
  c.ae = vae.ae_config("reconstruction")
  if denoising:
    c.ae.corruption = "masking"
    c.ae.corruption_level = 0.3

  c.train.num_steps = 3000
  c.train.log_every = 100
  c.train.eval_every = 1000
  c.train.checkpoint_every = 1000
  c.train.num_eval_samples = 64
  if small:
    config_lib.make_small(c)
  return c
