"""The VAE trainer: negative ELBO with an analytic KL, one Adam optimiser.

One network, `vae` (encoder and decoder in one module); evaluators can ask
it for prior samples (`sample`) and held-out sums of -ELBO, the
reconstruction term and the KL (`held_out`).
"""

import jax
import jax.numpy as jnp
import ml_collections

from gen_jax import elbo, schedules
from gen_jax.data.base import DatasetInfo
from gen_jax.models import vae as vae_models
from gen_jax.models.upsample import UPSAMPLE_IMPLS
from gen_jax.registry import Registry
from gen_jax.trainers import base
from gen_jax.trainers.base import Network, TrainState
from gen_jax.validation import one_of, positive

VAE = "vae"
_PARAMS_PER_CHANNEL = {"bernoulli": 1, "gaussian": 2}

ARCHS: Registry[base.ArchSpec] = Registry("config.model.arch")


def _mlp_defaults() -> ml_collections.ConfigDict:
  a = ml_collections.ConfigDict()
  a.hidden = (500,)
  return a


def _mlp_small(a) -> None:
  a.hidden = (32,)


def _mlp_build(config, info: DatasetInfo, per_channel: int):
  m = config.model
  hidden = tuple(m.mlp.hidden)
  return vae_models.VAE(
      vae_models.MLPEncoder(m.latent_dim, hidden),
      vae_models.MLPDecoder(info.example_shape, per_channel, hidden))


def _conv_defaults() -> ml_collections.ConfigDict:
  a = ml_collections.ConfigDict()
  a.width = 32
  a.upsample = "sub_pixel"
  return a


def _conv_validate(config) -> None:
  one_of("config.model.conv.upsample", config.model.conv.upsample,
         UPSAMPLE_IMPLS)
  positive("config.model.conv.width", config.model.conv.width)


def _conv_small(a) -> None:
  a.width = 8


def _conv_build(config, info: DatasetInfo, per_channel: int):
  m = config.model
  return vae_models.VAE(
      vae_models.ConvEncoder(m.latent_dim, m.conv.width),
      vae_models.ConvDecoder(info.example_shape, per_channel, m.conv.width,
                             m.conv.upsample))


ARCHS.add("mlp", base.ArchSpec(_mlp_defaults, _mlp_build, small=_mlp_small))
ARCHS.add("conv", base.ArchSpec(_conv_defaults, _conv_build, _conv_validate,
                                _conv_small))


def model_config(arch: str) -> ml_collections.ConfigDict:
  m = ml_collections.ConfigDict()
  m.arch = arch
  m.latent_dim = 20
  m.likelihood = "bernoulli"
  m[arch] = ARCHS.get(arch).defaults()
  return m


def one_adam(lr: float) -> ml_collections.ConfigDict:
  o = ml_collections.ConfigDict()
  o.lr, o.b1, o.b2 = lr, 0.9, 0.999
  o.decay = "constant"  # or linear / cosine to 0 at the last step
  return o


def defaults(c: ml_collections.ConfigDict) -> None:
  c.model = model_config("mlp")
  c.optim = one_adam(1e-3)


def validate(config) -> None:
  m = config.model
  base.check_arch(config, ARCHS)
  elbo.LIKELIHOODS.get(m.likelihood)
  positive("config.model.latent_dim", m.latent_dim)
  positive("config.optim.lr", config.optim.lr)


def small(c) -> None:
  c.model.latent_dim = 4
  ARCHS.get(c.model.arch).small(c.model[c.model.arch])


class VaeTrainer(base.Trainer):
  """Pure functions of one VAE configuration; the loop jits and shards them."""

  batches_per_step = 1

  def __init__(self, config, info: DatasetInfo, constrain=lambda x: x):
    self.config = config
    self.info = info
    self.constrain = constrain
    m = config.model
    self.model = ARCHS.get(m.arch).build(config, info,
                                         _PARAMS_PER_CHANNEL[m.likelihood])
    self.log_likelihood = elbo.LIKELIHOODS.get(m.likelihood)
    o = config.optim
    tx = schedules.adam(o.lr, o.b1, o.b2, o.decay, config.train.num_steps)
    x = jnp.zeros((2, *info.example_shape), jnp.float32)
    eps = jnp.zeros((2, m.latent_dim), jnp.float32)
    self.networks = {VAE: Network(self.model, (x, eps), tx)}

  def init(self, key: jax.Array) -> TrainState:
    return base.init_state(self.networks, key)

  def draw_noise(self, key: jax.Array, n: int) -> jax.Array:
    """(n, latent_dim) standard normals for a global batch, drawn once and
    sharded on the batch axis, so that values do not depend on the number of
    devices."""
    return self.constrain(jax.random.normal(
        key, (n, self.config.model.latent_dim)))

  def _terms(self, params, x, key):
    """Per-example (negative ELBO, -log p(x|z), KL), each (B,)."""
    eps = self.draw_noise(key, x.shape[0])
    out, mu, log_sigma = self.model.apply({"params": params}, x, eps)
    ll = self.log_likelihood(out, x)
    kl = elbo.gaussian_kl(mu, log_sigma)
    return elbo.negative_elbo(ll, kl), -ll, kl

  def train_step(self, state: TrainState, batch: dict[str, jax.Array]):
    """batch['x']: (1, B, ...). Returns (new state, scalar metrics)."""
    x = batch["x"][0]
    key = jax.random.fold_in(state.key, state.step)

    def loss_fn(params):
      nelbo, nll, kl = self._terms(params, x, key)
      return jnp.mean(nelbo), {"neg_elbo": jnp.mean(nelbo),
                               "recon": jnp.mean(nll), "kl": jnp.mean(kl)}

    grads, metrics = jax.grad(loss_fn, has_aux=True)(state.params[VAE])
    state = base.apply_gradients(self.networks[VAE], state, VAE, grads)
    return state.replace(step=state.step + 1), metrics

  # -- what evaluators can ask for ----------------------------------------------

  def held_out(self, state: TrainState, batch: dict[str, jax.Array]):
    """Masked sums over one eval batch: neg_elbo, recon, kl and count."""
    key = jax.random.fold_in(state.key, 2**31 - 1)
    nelbo, nll, kl = self._terms(state.params[VAE], batch["x"], key)
    mask = batch["mask"]
    return {"neg_elbo": jnp.sum(nelbo * mask), "recon": jnp.sum(nll * mask),
            "kl": jnp.sum(kl * mask), "count": jnp.sum(mask)}

  def mean_image(self, out: jax.Array) -> jax.Array:
    """The likelihood's mean, in the data's value range."""
    if self.config.model.likelihood == "bernoulli":
      p = jax.nn.sigmoid(out)
      lo, hi = self.info.value_range
      return lo + (hi - lo) * p
    return jnp.split(out, 2, axis=-1)[0]

  def sample(self, state: TrainState, key: jax.Array,
             n: int) -> dict[str, jax.Array]:
    """{'x': means of p(x|z)} for n draws z ~ N(0, I) from the prior."""
    z = self.draw_noise(key, n)
    out = self.model.apply({"params": state.params[VAE]}, z,
                           method=vae_models.VAE.decode)
    return {"x": self.mean_image(out)}


base.TRAINERS.add("vae", base.TrainerSpec(
    create=VaeTrainer, defaults=defaults, validate=validate, small=small))
