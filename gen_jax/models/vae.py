"""VAE encoders and decoders: MLP (784-500-20, as flax's example) and conv.

The encoder maps x (B, ...) to (mu, log_sigma), each (B, latent_dim); the
decoder maps z (B, latent_dim) to likelihood parameters of shape
(B, *example_shape[:-1], channels * params_per_channel): 1 for Bernoulli
logits, 2 for a Gaussian's mean and log-scale.
"""

import math
from collections.abc import Sequence

import flax.linen as nn
import jax

from gen_jax.elbo import reparameterize
from gen_jax.models.upsample import UpConv2x


class MLPEncoder(nn.Module):
  latent_dim: int = 20
  hidden: Sequence[int] = (500,)

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    h = x.reshape(x.shape[0], -1)
    for width in self.hidden:
      h = nn.relu(nn.Dense(width)(h))
    return nn.Dense(self.latent_dim)(h), nn.Dense(self.latent_dim)(h)


class MLPDecoder(nn.Module):
  example_shape: Sequence[int]
  params_per_channel: int = 1
  hidden: Sequence[int] = (500,)

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    h = z
    for width in reversed(self.hidden):
      h = nn.relu(nn.Dense(width)(h))
    *spatial, channels = self.example_shape
    out = nn.Dense(math.prod(self.example_shape)
                   * self.params_per_channel)(h)
    return out.reshape(z.shape[0], *spatial, channels * self.params_per_channel)


class ConvEncoder(nn.Module):
  """Two stride-2 convolutions, then dense heads."""
  latent_dim: int = 20
  width: int = 32

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    h = x
    for i in range(2):
      h = nn.relu(nn.Conv(self.width * 2 ** i, (4, 4), strides=(2, 2),
                          padding=((1, 1), (1, 1)))(h))
    h = nn.relu(nn.Dense(256)(h.reshape(h.shape[0], -1)))
    return nn.Dense(self.latent_dim)(h), nn.Dense(self.latent_dim)(h)


class ConvDecoder(nn.Module):
  """Dense to a (H/4, W/4) map, then two 2x upsampling convolutions."""
  example_shape: Sequence[int]
  params_per_channel: int = 1
  width: int = 32
  upsample: str = "sub_pixel"

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    height, width, channels = self.example_shape
    if height % 4 or width % 4:
      raise ValueError(f"the conv decoder needs sides divisible by 4, got "
                       f"{height}x{width}")
    h = nn.relu(nn.Dense(256)(z))
    h = nn.relu(nn.Dense(height // 4 * width // 4 * self.width * 2)(h))
    h = h.reshape(z.shape[0], height // 4, width // 4, self.width * 2)
    h = nn.relu(UpConv2x(self.width, self.upsample)(h))
    return UpConv2x(channels * self.params_per_channel, self.upsample)(h)


class VAE(nn.Module):
  """Encoder + decoder; `__call__` returns (decoder output, mu, log_sigma)."""
  encoder: nn.Module
  decoder: nn.Module

  def __call__(self, x: jax.Array, eps: jax.Array):
    mu, log_sigma = self.encoder(x)
    return self.decoder(reparameterize(mu, log_sigma, eps)), mu, log_sigma

  def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    return self.encoder(x)

  def decode(self, z: jax.Array) -> jax.Array:
    return self.decoder(z)
