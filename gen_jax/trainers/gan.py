"""The one GAN trainer: DCGAN, WGAN-GP and the rest are configs of it.

`config.gan.loss` picks the loss (losses.py), `config.gan.penalty` the
discriminator regulariser (penalties.py), `config.gan.n_critic` the number of
critic updates per generator update, `config.model.d_norm` the critic's
normalisation, and `config.optim` the two Adam optimisers. One call of
`train_step` runs all critic updates and the generator update in one compiled
function (a Python loop over the critic steps).

Mode-collapse remedies, all off by default: `gan.pack` (PacGAN),
`gan.unroll_steps` (unrolled GAN), `gan.instance_noise`,
`gan.label_smoothing`, `model.minibatch_std`, `model.d_norm='spectral'`,
`gan.penalty` in ('r1', 'dragan') and `gan.ema_decay` (an EMA generator for
sampling). Every batch the discriminator sees, real or fake, in the critic
and in the generator update, goes through `d_input`: instance noise, then
packing; penalties see those same inputs.
"""

from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gen_jax import losses, penalties, schedules, tricks
from gen_jax.data.base import DatasetInfo
from gen_jax.models import dcgan, mlp
from gen_jax.models.layers import BN_MOMENTUM
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
  ema_params: Any     # exponential moving average of g_params; () without


def build_models(config, info: DatasetInfo) -> tuple[nn.Module, nn.Module]:
  m = config.model
  mbstd = m.minibatch_std_group if m.minibatch_std else None
  if m.arch == "dcgan":
    if info.kind != "image":
      raise ValueError(f"model.arch 'dcgan' needs image data, "
                       f"{info.name} is {info.kind}")
    g = dcgan.Generator(resolution=info.example_shape[0],
                        channels=info.example_shape[-1], width=m.g_width,
                        upsample=m.upsample)
    d = dcgan.Discriminator(width=m.d_width, norm=m.d_norm,
                            minibatch_std=mbstd)
  else:
    g = mlp.Generator(out_dim=info.example_shape[0], hidden=tuple(m.g_hidden),
                      batch_norm=m.g_batch_norm, init_std=m.init_std)
    d = mlp.Discriminator(hidden=tuple(m.d_hidden), norm=m.d_norm,
                          minibatch_std=mbstd, maxout_pieces=m.d_maxout_pieces,
                          init_std=m.init_std)
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
    self.loss = losses.with_label_smoothing(
        losses.GAN_LOSSES.get(config.gan.loss), config.gan.label_smoothing)
    self.penalty = penalties.PENALTIES.get(config.gan.penalty)
    self.noise = NOISE.get(config.model.noise)
    o, steps = config.optim, config.train.num_steps
    d_updates = steps * config.gan.n_critic
    self.g_tx = schedules.adam(o.g_lr, o.g_b1, o.g_b2, o.decay, steps)
    self.d_tx = schedules.adam(o.d_lr, o.d_b1, o.d_b2, o.decay, d_updates)
    # The unrolled updates are differentiated through: eps_root keeps the
    # derivative of sqrt(nu) finite where a gradient has always been 0.
    self.unroll_tx = schedules.adam(o.d_lr, o.d_b1, o.d_b2, o.decay,
                                    d_updates, eps_root=1e-16)
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

  def d_input(self, x: jax.Array, key: jax.Array, step: jax.Array):
    """What the discriminator sees of a batch x (B, ...): x plus instance
    noise (if on), packed into (B/pack, ..., pack*C)."""
    g = self.config.gan
    if g.instance_noise > 0:
      std = tricks.noise_std(g.instance_noise, g.instance_noise_anneal_steps,
                             step)
      x = tricks.instance_noise(x, key, std)
    return tricks.pack(x, g.pack)

  def critic(self, params, d_state, x):
    """Critic logits in training mode; returns (logits, new critic state)."""
    return self.discriminator.apply({"params": params, **d_state}, x,
                                    train=True, mutable=list(d_state))

  # -- state ----------------------------------------------------------------

  def init(self, key: jax.Array) -> GanState:
    key, kg, kd = jax.random.split(key, 3)
    z = jnp.zeros((2, self.config.model.noise_dim), jnp.float32)
    g_params, g_state = _split_vars(self.generator.init(kg, z, train=False))
    x = jnp.zeros((2, *tricks.packed_shape(self.info.example_shape,
                                           self.config.gan.pack)), jnp.float32)
    d_params, d_state = _split_vars(self.discriminator.init(kd, x,
                                                            train=False))
    ema = g_params if self.config.gan.ema_decay > 0 else ()
    return GanState(step=jnp.zeros((), jnp.int32), key=key,
                    g_params=g_params, g_state=g_state, d_params=d_params,
                    d_state=d_state, g_opt=self.g_tx.init(g_params),
                    d_opt=self.d_tx.init(d_params), ema_params=ema)

  # -- training -------------------------------------------------------------

  def _d_objective(self, d_params, d_state, real, fake, key):
    """Loss + weight * penalty on discriminator inputs (see `d_input`).

    Returns (objective, (new critic state, metrics)).
    """
    real_logits, d_state = self.critic(d_params, d_state, real)
    fake_logits, d_state = self.critic(d_params, d_state, fake)
    loss = self.loss.discriminator(real_logits, fake_logits)
    # Batch statistics held fixed: per-example gradients (models/layers.py).
    critic = lambda x: self.discriminator.apply(
        {"params": d_params, **d_state}, x, train=True, per_example=True,
        mutable=list(d_state))[0]
    penalty = self.penalty(critic, real, fake, key)
    metrics = {"d_loss": loss, "penalty": penalty,
               "d_real": jnp.mean(real_logits),
               "d_fake": jnp.mean(fake_logits)}
    return loss + self.config.gan.penalty_weight * penalty, (d_state, metrics)

  def _d_inputs(self, real, fake, key, step):
    k_real, k_fake = jax.random.split(key)
    return self.d_input(real, k_real, step), self.d_input(fake, k_fake, step)

  def _critic_update(self, state: GanState, real: jax.Array, key: jax.Array):
    kz, kp = jax.random.split(key)
    fake, _ = self.generate(state.g_params, state.g_state,
                            self.draw_noise(kz, real.shape[0]), train=True)
    fake = jax.lax.stop_gradient(fake)
    real, fake = self._d_inputs(real, fake, jax.random.fold_in(key, 2),
                                state.step)
    grads, (d_state, metrics) = jax.grad(self._d_objective, has_aux=True)(
        state.d_params, state.d_state, real, fake, kp)
    updates, d_opt = self.d_tx.update(grads, state.d_opt, state.d_params)
    d_params = optax.apply_updates(state.d_params, updates)
    return state.replace(d_params=d_params, d_state=d_state,
                         d_opt=d_opt), metrics

  def unrolled_critic(self, state: GanState, real: jax.Array,
                      fake: jax.Array, key: jax.Array):
    """The critic after `gan.unroll_steps` critic updates (Metz et al. 2017).

    Each update is the critic's own (its objective, optimiser and state) on
    the same real batch and the same fakes, which are *not* stop-gradiented:
    the generator differentiates through the updates (as in the authors'
    released code, which unrolls Adam). Returns (params, critic state); the
    trainer's state is not changed.
    """
    d_params, d_state, d_opt = state.d_params, state.d_state, state.d_opt
    # A Python loop for the reason given in train_step (XLA:CPU while loops).
    for k in jax.random.split(key, self.config.gan.unroll_steps):
      r, f = self._d_inputs(real, fake, jax.random.fold_in(k, 2), state.step)
      grads, (d_state, _) = jax.grad(self._d_objective, has_aux=True)(
          d_params, d_state, r, f, k)
      updates, d_opt = self.unroll_tx.update(grads, d_opt, d_params)
      d_params = optax.apply_updates(d_params, updates)
    return d_params, d_state

  def g_objective(self, g_params, state: GanState, z: jax.Array,
                  real: jax.Array, key: jax.Array):
    """The generator's loss on G(z) against the critic.

    With `gan.unroll_steps` = k > 0 it is Metz et al.'s surrogate f_K instead:
    the negated critic loss (without penalty) on `real` and G(z) at the
    critic unrolled k steps ahead. For the cross-entropy losses that is the
    minimax value function; its real-data term depends on G through the
    unrolled updates, which is what lets G anticipate the critic.

    Returns (loss, (new generator state, new critic state)).
    """
    fake, g_state = self.generate(g_params, state.g_state, z, train=True)
    if self.config.gan.unroll_steps > 0:
      d_params, d_state = self.unrolled_critic(
          state, real, fake, jax.random.fold_in(key, 3))
      real_in, fake_in = self._d_inputs(real, fake, jax.random.fold_in(key, 2),
                                        state.step)
      real_logits, d_state = self.critic(d_params, d_state, real_in)
      fake_logits, _ = self.critic(d_params, d_state, fake_in)
      # The unrolled critic's state is a look-ahead, not an update.
      return (-self.loss.discriminator(real_logits, fake_logits),
              (g_state, state.d_state))
    fake_in = self.d_input(fake, jax.random.fold_in(key, 2), state.step)
    fake_logits, d_state = self.critic(state.d_params, state.d_state, fake_in)
    return self.loss.generator(fake_logits), (g_state, d_state)

  def _generator_update(self, state: GanState, key: jax.Array,
                        real: jax.Array):
    z = self.draw_noise(key, self.batch_size)
    (g_loss, (g_state, d_state)), grads = jax.value_and_grad(
        self.g_objective, has_aux=True)(state.g_params, state, z, real, key)
    updates, g_opt = self.g_tx.update(grads, state.g_opt, state.g_params)
    g_params = optax.apply_updates(state.g_params, updates)
    decay = self.config.gan.ema_decay
    # A tree map over () is a no-op: no EMA, no memory traffic for it.
    ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p,
                       state.ema_params, g_params if decay > 0 else ())
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
    state, g_metrics = self._generator_update(
        state, jax.random.fold_in(key, 1), batch["x"][-1])
    metrics = dict(d_metrics[-1])
    metrics.update(g_metrics)
    if self.config.gan.loss in ("wasserstein", "hinge"):
      metrics["w_distance"] = metrics["d_real"] - metrics["d_fake"]
    return state.replace(step=state.step + 1), metrics

  # -- evaluation -----------------------------------------------------------

  def sample(self, state: GanState, key: jax.Array, n: int) -> jax.Array:
    """n samples from the generator (EMA weights when ema_decay > 0).

    The EMA generator's batch norm uses its own standing statistics: the
    running averages in g_state belong to the live weights, and with the EMA
    weights they give wrong activations (on the 2D ring: 0.3% high-quality
    samples against 35% with its own statistics).
    """
    params, g_state = state.g_params, state.g_state
    if self.config.gan.ema_decay > 0:
      params = state.ema_params
      g_state = self.standing_stats(params, g_state,
                                    jax.random.fold_in(key, 1), n)
    x, _ = self.generate(params, g_state, self.draw_noise(key, n),
                         train=False)
    return x

  def standing_stats(self, params, g_state, key: jax.Array, n: int):
    """Batch-norm statistics of the generator `params` over n noise draws
    (BigGAN's "standing statistics"): one training-mode pass from zeroed
    running averages leaves (1 - BN_MOMENTUM) * the batch statistics."""
    if not g_state:
      return g_state
    zeros = jax.tree.map(jnp.zeros_like, g_state)
    _, new = self.generate(params, zeros, self.draw_noise(key, n), train=True)
    return jax.tree.map(lambda v: v / (1.0 - BN_MOMENTUM), new)

  def eval_metrics(self, samples: np.ndarray,
                   real: np.ndarray) -> dict[str, float]:
    """Sample-quality metrics that this dataset supports (host side).

    2D mixtures: modes captured, % high quality, reverse KL over all samples
    and over HQ samples only (`reverse_kl_hq`; nan without any). Images with a
    digit classifier (`info.extras['classifier']`): domain FID, KID,
    precision/recall and NDB against `real`, and for stacked digits (and
    stacked MNIST) the modes covered out of 1000 and the KL to uniform.
    """
    from gen_jax import metrics
    extras = self.info.extras
    if "modes" in extras:
      m = metrics.mixture_metrics(samples, extras["modes"], extras["mode_std"])
      out = {k: float(m[k]) for k in ("modes", "hq", "reverse_kl")}
      # PacGAN's released MetricLogger histograms HQ samples only.
      out["reverse_kl_hq"] = float(metrics.mixture_metrics(
          samples, extras["modes"], extras["mode_std"],
          hq_only=True)["reverse_kl"])
      return out
    if "classifier" not in extras:
      return {}
    classifier = metrics.get_classifier(extras["classifier"],
                                        self.info.example_shape[0],
                                        data_dir=extras.get("data_dir"))
    vr = self.info.value_range
    out = metrics.image_metrics(
        samples, real, classifier, vr, kid_subset_size=min(1000, len(real)),
        ndb_bins=max(2, min(100, len(real) // 20)))
    if extras.get("num_modes") == 1000:
      m = metrics.stacked_mode_metrics(samples, classifier, vr)
      out.update(modes=m["modes"], kl=m["kl"])
    return {k: float(v) for k, v in out.items()}
