"""The VAE trainer: negative ELBO with an analytic KL, one Adam optimiser."""

from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gen_jax import elbo, schedules
from gen_jax.data.base import DatasetInfo
from gen_jax.models import vae as vae_models

ARCHS = ("mlp", "conv")
_PARAMS_PER_CHANNEL = {"bernoulli": 1, "gaussian": 2}


@flax.struct.dataclass
class VaeState:
  step: jax.Array
  key: jax.Array
  params: Any
  opt: Any


def build_model(config, info: DatasetInfo) -> vae_models.VAE:
  m = config.model
  per_channel = _PARAMS_PER_CHANNEL[m.likelihood]
  if m.arch == "mlp":
    return vae_models.VAE(
        vae_models.MLPEncoder(m.latent_dim, tuple(m.hidden)),
        vae_models.MLPDecoder(info.example_shape, per_channel,
                              tuple(m.hidden)))
  return vae_models.VAE(
      vae_models.ConvEncoder(m.latent_dim, m.width),
      vae_models.ConvDecoder(info.example_shape, per_channel, m.width,
                             m.upsample))


class VaeTrainer:
  """Pure functions of one VAE configuration; the loop jits and shards them."""

  batches_per_step = 1

  def __init__(self, config, info: DatasetInfo, constrain=lambda x: x):
    self.config = config
    self.info = info
    self.constrain = constrain
    self.model = build_model(config, info)
    self.log_likelihood = elbo.LIKELIHOODS.get(config.model.likelihood)
    o = config.optim
    self.tx = schedules.adam(o.lr, o.b1, o.b2, o.decay,
                             config.train.num_steps)

  def init(self, key: jax.Array) -> VaeState:
    key, k = jax.random.split(key)
    x = jnp.zeros((2, *self.info.example_shape), jnp.float32)
    eps = jnp.zeros((2, self.config.model.latent_dim), jnp.float32)
    params = self.model.init(k, x, eps)["params"]
    return VaeState(step=jnp.zeros((), jnp.int32), key=key, params=params,
                    opt=self.tx.init(params))

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

  def train_step(self, state: VaeState, batch: dict[str, jax.Array]):
    """batch['x']: (1, B, ...). Returns (new state, scalar metrics)."""
    x = batch["x"][0]
    key = jax.random.fold_in(state.key, state.step)

    def loss_fn(params):
      nelbo, nll, kl = self._terms(params, x, key)
      return jnp.mean(nelbo), {"neg_elbo": jnp.mean(nelbo),
                               "recon": jnp.mean(nll), "kl": jnp.mean(kl)}

    grads, metrics = jax.grad(loss_fn, has_aux=True)(state.params)
    updates, opt = self.tx.update(grads, state.opt, state.params)
    params = optax.apply_updates(state.params, updates)
    return state.replace(step=state.step + 1, params=params,
                         opt=opt), metrics

  def eval_batch(self, state: VaeState, batch: dict[str, jax.Array]):
    """Masked sums over one eval batch: neg_elbo, recon, kl and count."""
    key = jax.random.fold_in(state.key, 2**31 - 1)
    nelbo, nll, kl = self._terms(state.params, batch["x"], key)
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

  def sample(self, state: VaeState, key: jax.Array, n: int) -> jax.Array:
    """Means of p(x|z) for n draws z ~ N(0, I) from the prior."""
    z = self.draw_noise(key, n)
    out = self.model.apply({"params": state.params}, z,
                           method=vae_models.VAE.decode)
    return self.mean_image(out)

  def eval_metrics(self, samples: np.ndarray,
                   real: np.ndarray) -> dict[str, float]:
    del samples, real  # the held-out ELBO (eval_batch) is the VAE's metric
    return {}
