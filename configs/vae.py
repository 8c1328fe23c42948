r"""VAE (Kingma & Welling 2014) with a Bernoulli likelihood on dynamically
binarized images; an MLP encoder/decoder (784-500-20 in flax's example).

  python -m gen_jax.main --config=configs/vae.py:digits --workdir=runs/vae

ARG: a dataset name (digits, binarized_mnist, mnist, ...), optionally a
variant, `beta` (beta-VAE: kl_weight 4, KL warm-up over the first 500 steps)
or `iwae` (the IWAE objective, k = 5), and `small` (tests). Held-out
negative ELBO (nats) is eval/neg_elbo; the importance-weighted NLL with
config.ae.nll_k samples (5000) at the final evaluation is eval/nll.

  python -m gen_jax.main --config=configs/vae.py:digits,beta --workdir=runs/bvae
  python -m gen_jax.main --config=configs/vae.py:digits,iwae --workdir=runs/iwae
"""

from gen_jax import config_lib
from gen_jax.trainers import vae

VARIANTS = ("beta", "iwae")
RESOLUTION = {"mnist": 28, "binarized_mnist": 28, "fashion_mnist": 28}


def get_config(arg=None):
  tokens = [t for t in (arg or "").split(",") if t]
  variant = [t for t in tokens if t in VARIANTS]
  dataset, small = config_lib.parse_arg(
      ",".join(t for t in tokens if t not in VARIANTS), "digits")
  c = config_lib.base("vae", dataset)
  c.data.image_size = RESOLUTION.get(dataset, 16)
  c.data.value_range = (0.0, 1.0)
  c.data.binarize = dataset != "binarized_mnist"
  c.data.batch_size = 128

  c.model = vae.model_config("mlp")
  c.optim = vae.one_adam(lr=1e-3)
  c.ae = vae.ae_config("iwae" if "iwae" in variant else "elbo")
  if "beta" in variant:
    c.ae.kl_weight = 4.0
    c.ae.kl_warmup_steps = 500

  c.train.num_steps = 3000
  c.train.log_every = 100
  c.train.eval_every = 500
  c.train.checkpoint_every = 1000
  c.train.num_eval_samples = 64
  if small:
    config_lib.make_small(c)
  return c
