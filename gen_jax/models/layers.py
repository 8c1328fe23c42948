"""Normalisation choices shared by the discriminators (`config.model.d_norm`)."""

import flax.linen as nn
import jax

D_NORMS = ("batch", "layer", "spectral", "none")


def normalized(layer: nn.Module, x: jax.Array, norm: str, train: bool,
               normalize_output: bool = True) -> jax.Array:
  """Applies `layer` to `x` with the discriminator normalisation `norm`.

  'spectral' wraps the layer (Miyato et al. 2018; its power-iteration vector
  lives in the 'batch_stats' collection); 'batch' and 'layer' normalise the
  layer's output unless `normalize_output` is False (DCGAN leaves the first
  and last layers unnormalised).
  """
  if norm == "spectral":
    return nn.SpectralNorm(layer)(x, update_stats=train)
  y = layer(x)
  if not normalize_output or norm == "none":
    return y
  if norm == "batch":
    return nn.BatchNorm(use_running_average=not train, momentum=0.9)(y)
  if norm == "layer":
    return nn.LayerNorm()(y)
  raise ValueError(f"d_norm {norm!r} is not one of {D_NORMS}")
