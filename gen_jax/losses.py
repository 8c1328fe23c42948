"""GAN loss formulations, one pair of pure functions each, picked by name.

Every entry of `GAN_LOSSES` is a `GanLoss`: `discriminator(real_logits,
fake_logits) -> scalar` and `generator(fake_logits) -> scalar`, where logits
are the discriminator's raw outputs of shape (B,) or (B, 1), and what the
trainer needs to know about the loss: `estimates_distance` (the critic loss
is minus a distance estimate, E[D(x)] - E[D(G(z))], logged as `w_distance`)
and `cross_entropy` (the real target can be smoothed). Formulas follow
Lucic et al. 2018, "Are GANs Created Equal?", Table 1, and compare_gan's
`loss_lib.py`.
"""

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from gen_jax.errors import ConfigError
from gen_jax.registry import Registry


class GanLoss(NamedTuple):
  discriminator: Callable[[jax.Array, jax.Array], jax.Array]
  generator: Callable[[jax.Array], jax.Array]
  estimates_distance: bool = False
  cross_entropy: bool = False


GAN_LOSSES: Registry[GanLoss] = Registry("config.gan.loss")


def _d_cross_entropy(real_logits, fake_logits, real_target=1.0):
  """-E[t log D(x) + (1 - t) log(1 - D(x))] - E[log(1 - D(G(z)))].

  `real_target` < 1 is one-sided label smoothing (Salimans et al. 2016).
  """
  real = (real_target * jax.nn.softplus(-real_logits)
          + (1.0 - real_target) * jax.nn.softplus(real_logits))
  return jnp.mean(real) + jnp.mean(jax.nn.softplus(fake_logits))


def minimax_generator(fake_logits):
  """E[log(1 - D(G(z)))]: Goodfellow et al. 2014's saturating objective."""
  return -jnp.mean(jax.nn.softplus(fake_logits))


def non_saturating_generator(fake_logits):
  """-E[log D(G(z))]."""
  return jnp.mean(jax.nn.softplus(-fake_logits))


def wasserstein_discriminator(real_logits, fake_logits):
  """E[D(G(z))] - E[D(x)] (Arjovsky et al. 2017)."""
  return jnp.mean(fake_logits) - jnp.mean(real_logits)


def wasserstein_generator(fake_logits):
  """-E[D(G(z))]."""
  return -jnp.mean(fake_logits)


def hinge_discriminator(real_logits, fake_logits):
  """E[relu(1 - D(x))] + E[relu(1 + D(G(z)))] (Lim & Ye 2017)."""
  return (jnp.mean(jax.nn.relu(1.0 - real_logits))
          + jnp.mean(jax.nn.relu(1.0 + fake_logits)))


def least_squares_discriminator(real_logits, fake_logits):
  """E[(D(x) - 1)^2] + E[D(G(z))^2] (Mao et al. 2017, a=0, b=c=1), halved."""
  return 0.5 * (jnp.mean(jnp.square(real_logits - 1.0))
                + jnp.mean(jnp.square(fake_logits)))


def least_squares_generator(fake_logits):
  """E[(D(G(z)) - 1)^2], halved."""
  return 0.5 * jnp.mean(jnp.square(fake_logits - 1.0))


GAN_LOSSES.add("minimax", GanLoss(_d_cross_entropy, minimax_generator,
                                   cross_entropy=True))
GAN_LOSSES.add("non_saturating",
               GanLoss(_d_cross_entropy, non_saturating_generator,
                       cross_entropy=True))
GAN_LOSSES.add("wasserstein",
               GanLoss(wasserstein_discriminator, wasserstein_generator,
                       estimates_distance=True))
GAN_LOSSES.add("hinge", GanLoss(hinge_discriminator, wasserstein_generator,
                                estimates_distance=True))
GAN_LOSSES.add("least_squares",
               GanLoss(least_squares_discriminator, least_squares_generator))


def with_label_smoothing(loss: GanLoss, smoothing: float) -> GanLoss:
  """`loss` with the discriminator's real target 1 - smoothing (one-sided).

  Only the cross-entropy losses have a target to smooth; fakes keep target 0
  (Salimans et al. 2016, section 3.4: smoothing fakes too moves the optimum).
  """
  if smoothing == 0:
    return loss
  if not loss.cross_entropy:
    raise ConfigError(
        f"config.gan.label_smoothing={smoothing!r} needs a cross-entropy loss "
        f"({', '.join(SMOOTHABLE)})")
  return loss._replace(discriminator=functools.partial(
      _d_cross_entropy, real_target=1.0 - smoothing))


SMOOTHABLE = tuple(name for name in GAN_LOSSES
                   if GAN_LOSSES.get(name).cross_entropy)
