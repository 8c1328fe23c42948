"""The autoencoder family's trainer: VAE, beta-VAE, IWAE, plain and
denoising autoencoders as configs of one trainer (`config.trainer='vae'`).

`config.ae.objective` picks the loss:
- 'elbo': the negative ELBO with an analytic KL (Kingma & Welling 2014),
  the KL weighted by `kl_weight` (beta-VAE, Higgins et al. 2017) with an
  optional linear warm-up from 0 over `kl_warmup_steps`;
- 'iwae': the k-sample importance-weighted bound (Burda et al. 2016),
  k = `iwae_k` (k = 1 is the ELBO);
- 'reconstruction': a plain autoencoder, z = the encoder's mean, loss
  -log p(x|z) (Bernoulli cross-entropy, Gaussian, or `mse`); it has no
  prior, so nothing can be sampled from it.
`config.ae.corruption` (gaussian / masking / salt_pepper) makes any of them
denoising: the encoder sees the corrupted input, the loss the clean one.

One network, `vae` (encoder and decoder in one module). What evaluators can
ask of it (`gen_jax/evaluators/`): `sample` (prior samples, not for a plain
AE), `held_out` (held-out sums), and the codec interface the latent-space
evaluators use: `encode(state, x)`, `decode(state, z)`, `corrupt(x, key)`
and, for stochastic encoders, `log_weights(state, x, key, k)`.
"""

import jax
import jax.numpy as jnp
import ml_collections

from gen_jax import corruption, elbo, schedules
from gen_jax.data.base import DatasetInfo
from gen_jax.models import vae as vae_models
from gen_jax.models.upsample import UPSAMPLE_IMPLS
from gen_jax.registry import Registry
from gen_jax.trainers import base
from gen_jax.trainers.base import Network, TrainState
from gen_jax.errors import ConfigError
from gen_jax.validation import at_least, one_of, positive

VAE = "vae"
_PARAMS_PER_CHANNEL = {"bernoulli": 1, "gaussian": 2, "mse": 1}
OBJECTIVES = ("elbo", "iwae", "reconstruction")

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
  o.decay = "constant"  # or linear / cosine (schedules.py)
  return o


def ae_config(objective: str = "elbo") -> ml_collections.ConfigDict:
  """config.ae: the objective, its weights, the corruption and the
  held-out likelihood estimate."""
  a = ml_collections.ConfigDict()
  a.objective = objective        # elbo | iwae | reconstruction
  a.kl_weight = 1.0              # beta of a beta-VAE (objective elbo)
  a.kl_warmup_steps = 0          # KL weight rises linearly from 0 (0: off)
  a.iwae_k = 5                   # importance samples (objective iwae)
  a.corruption = "none"          # none | gaussian | masking | salt_pepper
  a.corruption_level = 0.0       # gaussian: std s > 0; others: p in (0, 1]
  # Held-out importance-weighted log-likelihood (`nll` evaluator): k at the
  # final evaluation, k at earlier ones (0: only at the end), and how many
  # importance samples are decoded at once (bounds memory).
  a.nll_k = 5000
  a.nll_k_during = 0
  a.nll_chunk = 500
  return a


def defaults(c: ml_collections.ConfigDict) -> None:
  c.model = model_config("mlp")
  c.optim = one_adam(1e-3)
  c.ae = ae_config()


def validate(config) -> None:
  m, a = config.model, config.ae
  base.check_arch(config, ARCHS)
  elbo.LIKELIHOODS.get(m.likelihood)
  positive("config.model.latent_dim", m.latent_dim)
  positive("config.optim.lr", config.optim.lr)
  one_of("config.ae.objective", a.objective, OBJECTIVES)
  if a.objective != "reconstruction" and m.likelihood not in elbo.NORMALISED:
    raise ConfigError(f"config.model.likelihood={m.likelihood!r} is "
                      f"unnormalised: config.ae.objective={a.objective!r} "
                      f"needs one of: {', '.join(elbo.NORMALISED)}")
  at_least("config.ae.kl_weight", a.kl_weight, 0.0)
  at_least("config.ae.kl_warmup_steps", a.kl_warmup_steps, 0)
  at_least("config.ae.iwae_k", a.iwae_k, 1, "importance samples")
  corruption.validate(a.corruption, a.corruption_level)
  at_least("config.ae.nll_k", a.nll_k, 0, "0 turns the estimate off")
  at_least("config.ae.nll_k_during", a.nll_k_during, 0,
           "0: only at the final evaluation")
  positive("config.ae.nll_chunk", a.nll_chunk)
  if a.objective == "reconstruction":
    from gen_jax import evaluators
    for name in config.evals:
      if name != "default" and evaluators.EVALUATORS.get(name).needs == \
          "samples":
        raise ConfigError(
            f"config.evals: {name!r} needs samples from a prior, and a plain "
            "autoencoder (config.ae.objective='reconstruction') has none; "
            "use a VAE (objective elbo or iwae) or drop it")


def validate_data(config, info: DatasetInfo) -> None:
  if "arithmetic" in config.evals and not info.extras.get("num_classes"):
    raise ConfigError(f"config.evals: 'arithmetic' needs class labels, and "
                      f"dataset {info.name!r} has none")


def small(c) -> None:
  c.model.latent_dim = 4
  ARCHS.get(c.model.arch).small(c.model[c.model.arch])
  c.ae.nll_k = min(c.ae.nll_k, 50)
  c.ae.nll_chunk = min(c.ae.nll_chunk, 25)


class VaeTrainer(base.Trainer):
  """Pure functions of one autoencoder configuration; the loop jits and
  shards them."""

  batches_per_step = 1

  def __init__(self, config, info: DatasetInfo, constrain=lambda x: x):
    self.config = config
    self.info = info
    self.constrain = constrain
    m, a = config.model, config.ae
    self.model = ARCHS.get(m.arch).build(config, info,
                                         _PARAMS_PER_CHANNEL[m.likelihood])
    self.log_likelihood = elbo.LIKELIHOODS.get(m.likelihood)
    self.objective = a.objective
    self.stochastic = a.objective != "reconstruction"
    self.has_prior = self.stochastic
    self.denoising = a.corruption != "none"
    self._corrupt = corruption.CORRUPTIONS.get(a.corruption)
    # What the codec evaluators read (gen_jax/evaluators/latent.py).
    self.codec_settings = {"nll_k": a.nll_k, "nll_k_during": a.nll_k_during,
                           "nll_chunk": a.nll_chunk}
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

  def corrupt(self, x: jax.Array, key: jax.Array) -> jax.Array:
    """The denoising corruption of x (x itself without one)."""
    a = self.config.ae
    return self._corrupt(x, key, a.corruption_level, self.info.value_range)

  def _terms(self, params, x_in, x, key):
    """Per-example (negative ELBO, -log p(x|z), KL), each (B,), encoding
    x_in and scoring the reconstruction of x. A plain AE decodes the mean
    (KL 0)."""
    if not self.stochastic:
      mu, _ = self._encode(params, x_in)
      ll = self.log_likelihood(self._decode(params, mu), x)
      return -ll, -ll, jnp.zeros_like(ll)
    eps = self.draw_noise(key, x.shape[0])
    out, mu, log_sigma = self.model.apply({"params": params}, x_in, eps)
    ll = self.log_likelihood(out, x)
    kl = elbo.gaussian_kl(mu, log_sigma)
    return elbo.negative_elbo(ll, kl), -ll, kl

  def _encode(self, params, x):
    return self.model.apply({"params": params}, x,
                            method=vae_models.VAE.encode)

  def _decode(self, params, z):
    return self.model.apply({"params": params}, z,
                            method=vae_models.VAE.decode)

  def _log_weights(self, params, x_in, x, key, k: int) -> jax.Array:
    """(B, k) log importance weights log p(x, z_i) - log q(z_i|x_in),
    z_i ~ q(z|x_in)."""
    mu, log_sigma = self._encode(params, x_in)
    b, d = mu.shape
    eps = self.constrain(jax.random.normal(key, (b, k, d)))
    z = elbo.reparameterize(mu[:, None], log_sigma[:, None], eps)
    out = self._decode(params, z.reshape(b * k, d))
    xk = jnp.broadcast_to(x[:, None], (b, k, *x.shape[1:]))
    ll = self.log_likelihood(out, xk.reshape(b * k, *x.shape[1:]))
    return elbo.log_importance_weights(ll.reshape(b, k), z, mu[:, None],
                                       log_sigma[:, None])

  def kl_weight(self, step: jax.Array) -> jax.Array:
    a = self.config.ae
    if a.kl_warmup_steps == 0:
      return jnp.asarray(a.kl_weight, jnp.float32)
    return a.kl_weight * jnp.minimum(1.0, step / a.kl_warmup_steps)

  def _loss(self, params, x, key, step):
    """(scalar loss, metrics) of the configured objective."""
    a = self.config.ae
    x_in = x
    if self.denoising:
      key, ck = jax.random.split(key)
      x_in = self.corrupt(x, ck)
    if self.objective == "iwae":
      log_w = self._log_weights(params, x_in, x, key, a.iwae_k)
      neg_iwae = -jnp.mean(elbo.iwae_bound(log_w))
      # -mean of log w: an unbiased estimate of -ELBO, for comparison.
      return neg_iwae, {"neg_iwae": neg_iwae, "neg_elbo": -jnp.mean(log_w)}
    nelbo, nll, kl = self._terms(params, x_in, x, key)
    if not self.stochastic:
      return jnp.mean(nll), {"recon": jnp.mean(nll)}
    metrics = {"neg_elbo": jnp.mean(nelbo), "recon": jnp.mean(nll),
               "kl": jnp.mean(kl)}
    if a.kl_weight == 1.0 and a.kl_warmup_steps == 0:
      return jnp.mean(nelbo), metrics  # the plain VAE, as before
    w = self.kl_weight(step)
    loss = jnp.mean(nll + w * kl)
    return loss, {**metrics, "loss": loss, "kl_weight": w}

  def train_step(self, state: TrainState, batch: dict[str, jax.Array]):
    """batch['x']: (1, B, ...). Returns (new state, scalar metrics)."""
    x = batch["x"][0]
    key = jax.random.fold_in(state.key, state.step)
    grads, metrics = jax.grad(self._loss, has_aux=True)(
        state.params[VAE], x, key, state.step)
    state = base.apply_gradients(self.networks[VAE], state, VAE, grads)
    return state.replace(step=state.step + 1), metrics

  # -- what evaluators can ask for ----------------------------------------------

  def held_out(self, state: TrainState, batch: dict[str, jax.Array]):
    """Masked sums over one eval batch of clean inputs: neg_elbo, recon, kl
    (a plain AE: recon only) and count."""
    key = jax.random.fold_in(state.key, 2**31 - 1)
    x = batch["x"]
    nelbo, nll, kl = self._terms(state.params[VAE], x, x, key)
    mask = batch["mask"]
    if not self.stochastic:
      return {"recon": jnp.sum(nll * mask), "count": jnp.sum(mask)}
    return {"neg_elbo": jnp.sum(nelbo * mask), "recon": jnp.sum(nll * mask),
            "kl": jnp.sum(kl * mask), "count": jnp.sum(mask)}

  def mean_image(self, out: jax.Array) -> jax.Array:
    """The likelihood's mean, in the data's value range."""
    if self.config.model.likelihood == "bernoulli":
      p = jax.nn.sigmoid(out)
      lo, hi = self.info.value_range
      return lo + (hi - lo) * p
    if self.config.model.likelihood == "mse":
      return out
    return jnp.split(out, 2, axis=-1)[0]

  def sample(self, state: TrainState, key: jax.Array,
             n: int) -> dict[str, jax.Array]:
    """{'x': means of p(x|z)} for n draws z ~ N(0, I) from the prior."""
    if not self.has_prior:
      raise ConfigError("config.ae.objective='reconstruction' has no prior "
                        "to sample from")
    z = self.draw_noise(key, n)
    return {"x": self.mean_image(self._decode(state.params[VAE], z))}

  def encode(self, state: TrainState, x: jax.Array) -> dict[str, jax.Array]:
    """{'mean': (n, D)} and, for a stochastic encoder, {'log_sigma'}."""
    mu, log_sigma = self._encode(state.params[VAE], x)
    return ({"mean": mu, "log_sigma": log_sigma} if self.stochastic
            else {"mean": mu})

  def decode(self, state: TrainState, z: jax.Array) -> jax.Array:
    """Codes (n, D) -> the means of p(x|z), (n, ...) in the data's range."""
    return self.mean_image(self._decode(state.params[VAE], z))

  def log_weights(self, state: TrainState, x: jax.Array, key: jax.Array,
                  k: int) -> jax.Array:
    """(n, k) log importance weights of clean inputs x (n, ...)."""
    return self._log_weights(state.params[VAE], x, x, key, k)


base.TRAINERS.add("vae", base.TrainerSpec(
    create=VaeTrainer, defaults=defaults, validate=validate, small=small,
    validate_data=validate_data,
    model_config=model_config))
