"""The one GAN trainer: DCGAN, WGAN-GP and the rest are configs of it.

`config.gan.loss` picks the loss (losses.py), `config.gan.penalty` the
discriminator regulariser (penalties.py), `config.gan.n_critic` the number of
critic updates per generator update, `config.model.d_norm` the critic's
normalisation, and `config.optim` the two Adam optimisers. One call of
`train_step` runs all critic updates and the generator update in one compiled
function (`lax.scan` over the critic steps).
"""

from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gen_jax import losses, penalties
from gen_jax.data.base import DatasetInfo
from gen_jax.models import dcgan, mlp
from gen_jax.registry import Registry

Variables = dict[str, Any]

NOISE: Registry = Registry("config.model.noise")
NOISE.add("normal", lambda key, shape: jax.random.normal(key, shape))
NOISE.add("uniform", lambda key, shape: jax.random.uniform(key, shape,
                                                           minval=-1.0,
                                                           maxval=1.0))
ARCHS = ("dcgan", "mlp")


@flax.struct.dataclass
class GanState:
  step: jax.Array
  key: jax.Array
  g_params: Any
  g_state: Any        # generator collections other than params (batch_stats)
  d_params: Any
  d_state: Any        # critic batch_stats / spectral-norm vectors
  g_opt: Any
  d_opt: Any
  ema_params: Any     # exponential moving average of g_params (or g_params)


def build_models(config, info: DatasetInfo) -> tuple[nn.Module, nn.Module]:
  m = config.model
  if m.arch == "dcgan":
    if info.kind != "image":
      raise ValueError(f"model.arch 'dcgan' needs image data, "
                       f"{info.name} is {info.kind}")
    g = dcgan.Generator(resolution=info.example_shape[0],
                        channels=info.example_shape[-1], width=m.g_width,
                        upsample=m.upsample)
    d = dcgan.Discriminator(width=m.d_width, norm=m.d_norm)
  else:
    g = mlp.Generator(out_dim=info.example_shape[0], hidden=tuple(m.g_hidden),
                      batch_norm=m.g_batch_norm)
    d = mlp.Discriminator(hidden=tuple(m.d_hidden), norm=m.d_norm)
  return g, d


def _split_vars(variables: Variables) -> tuple[Any, Any]:
  variables = dict(variables)
  params = variables.pop("params")
  return params, variables


class GanTrainer:
  """Pure functions of one GAN configuration; the loop jits and shards them."""

  def __init__(self, config, info: DatasetInfo, constrain=lambda x: x):
    """`constrain` pins a batch-shaped array's sharding (noise, fakes)."""
    self.config = config
    self.info = info
    self.constrain = constrain
    self.generator, self.discriminator = build_models(config, info)
    self.loss = losses.GAN_LOSSES.get(config.gan.loss)
    self.penalty = penalties.PENALTIES.get(config.gan.penalty)
    self.noise = NOISE.get(config.model.noise)
    o = config.optim
    self.g_tx = optax.adam(o.g_lr, b1=o.g_b1, b2=o.g_b2)
    self.d_tx = optax.adam(o.d_lr, b1=o.d_b1, b2=o.d_b2)
    self.batches_per_step = config.gan.n_critic
    self.batch_size = config.data.batch_size

  # -- pieces ---------------------------------------------------------------

  def draw_noise(self, key: jax.Array, n: int) -> jax.Array:
    """Noise for a global batch, drawn once and sharded on the batch axis, so
    that values do not depend on the number of devices."""
    return self.constrain(self.noise(key, (n, self.config.model.noise_dim)))

  def generate(self, params, g_state, z, train: bool):
    """Returns (samples, new generator state)."""
    if train:
      x, new = self.generator.apply({"params": params, **g_state}, z,
                                    train=True, mutable=list(g_state))
      return x, new
    return self.generator.apply({"params": params, **g_state}, z,
                                train=False), g_state

  def critic(self, params, d_state, x):
    """Critic logits in training mode; returns (logits, new critic state)."""
    return self.discriminator.apply({"params": params, **d_state}, x,
                                    train=True, mutable=list(d_state))

  # -- state ----------------------------------------------------------------

  def init(self, key: jax.Array) -> GanState:
    key, kg, kd = jax.random.split(key, 3)
    z = jnp.zeros((2, self.config.model.noise_dim), jnp.float32)
    g_params, g_state = _split_vars(self.generator.init(kg, z, train=False))
    x = jnp.zeros((2, *self.info.example_shape), jnp.float32)
    d_params, d_state = _split_vars(self.discriminator.init(kd, x,
                                                            train=False))
    return GanState(step=jnp.zeros((), jnp.int32), key=key,
                    g_params=g_params, g_state=g_state, d_params=d_params,
                    d_state=d_state, g_opt=self.g_tx.init(g_params),
                    d_opt=self.d_tx.init(d_params), ema_params=g_params)

  # -- training -------------------------------------------------------------

  def _critic_update(self, state: GanState, real: jax.Array, key: jax.Array):
    kz, kp = jax.random.split(key)
    fake, _ = self.generate(state.g_params, state.g_state,
                            self.draw_noise(kz, real.shape[0]), train=True)
    fake = jax.lax.stop_gradient(fake)
    weight = self.config.gan.penalty_weight

    def loss_fn(d_params):
      real_logits, d_state = self.critic(d_params, state.d_state, real)
      fake_logits, d_state = self.critic(d_params, d_state, fake)
      loss = self.loss.discriminator(real_logits, fake_logits)
      critic = lambda x: self.critic(d_params, d_state, x)[0]
      penalty = self.penalty(critic, real, fake, kp)
      metrics = {"d_loss": loss, "penalty": penalty,
                 "d_real": jnp.mean(real_logits),
                 "d_fake": jnp.mean(fake_logits)}
      return loss + weight * penalty, (d_state, metrics)

    grads, (d_state, metrics) = jax.grad(loss_fn, has_aux=True)(
        state.d_params)
    updates, d_opt = self.d_tx.update(grads, state.d_opt, state.d_params)
    d_params = optax.apply_updates(state.d_params, updates)
    return state.replace(d_params=d_params, d_state=d_state,
                         d_opt=d_opt), metrics

  def _generator_update(self, state: GanState, key: jax.Array):
    z = self.draw_noise(key, self.batch_size)

    def loss_fn(g_params):
      fake, g_state = self.generate(g_params, state.g_state, z, train=True)
      fake_logits, d_state = self.critic(state.d_params, state.d_state, fake)
      return self.loss.generator(fake_logits), (g_state, d_state)

    (g_loss, (g_state, d_state)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state.g_params)
    updates, g_opt = self.g_tx.update(grads, state.g_opt, state.g_params)
    g_params = optax.apply_updates(state.g_params, updates)
    decay = self.config.gan.ema_decay
    ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p,
                       state.ema_params, g_params)
    return state.replace(g_params=g_params, g_state=g_state, d_state=d_state,
                         g_opt=g_opt, ema_params=ema), {"g_loss": g_loss}

  def train_step(self, state: GanState, batch: dict[str, jax.Array]):
    """batch['x']: (n_critic, B, ...). Returns (new state, scalar metrics)."""
    key = jax.random.fold_in(state.key, state.step)
    critic_keys = jax.random.split(jax.random.fold_in(key, 0),
                                   self.batches_per_step)

    # A Python loop, not lax.scan: XLA:CPU runs convolutions inside a while
    # loop many times slower (even a fully unrolled scan keeps one), and
    # n_critic is small.
    d_metrics = []
    for i in range(self.batches_per_step):
      state, m = self._critic_update(state, batch["x"][i], critic_keys[i])
      d_metrics.append(m)
    state, g_metrics = self._generator_update(state, jax.random.fold_in(key, 1))
    metrics = dict(d_metrics[-1])
    metrics.update(g_metrics)
    if self.config.gan.loss in ("wasserstein", "hinge"):
      metrics["w_distance"] = metrics["d_real"] - metrics["d_fake"]
    return state.replace(step=state.step + 1), metrics

  # -- evaluation -----------------------------------------------------------

  def sample(self, state: GanState, key: jax.Array, n: int) -> jax.Array:
    """n samples from the generator (EMA weights when ema_decay > 0)."""
    params = (state.ema_params if self.config.gan.ema_decay > 0
              else state.g_params)
    x, _ = self.generate(params, state.g_state, self.draw_noise(key, n),
                         train=False)
    return x

  def eval_metrics(self, samples: np.ndarray,
                   real: np.ndarray) -> dict[str, float]:
    """Sample-quality metrics that this dataset supports (host side).

    2D mixtures: modes captured, % high quality, reverse KL. Images with a
    digit classifier (`info.extras['classifier']`): domain FID, KID,
    precision/recall and NDB against `real`, and for stacked digits the modes
    covered out of 1000 and the KL to uniform.
    """
    from gen_jax import metrics
    extras = self.info.extras
    if "modes" in extras:
      m = metrics.mixture_metrics(samples, extras["modes"], extras["mode_std"])
      return {k: float(m[k]) for k in ("modes", "hq", "reverse_kl")}
    if "classifier" not in extras:
      return {}
    classifier = metrics.get_classifier(extras["classifier"],
                                        self.info.example_shape[0])
    vr = self.info.value_range
    out = metrics.image_metrics(
        samples, real, classifier, vr, kid_subset_size=min(1000, len(real)),
        ndb_bins=max(2, min(100, len(real) // 20)))
    if extras.get("num_modes") == 1000:
      m = metrics.stacked_mode_metrics(samples, classifier, vr)
      out.update(modes=m["modes"], kl=m["kl"])
    return {k: float(v) for k, v in out.items()}
