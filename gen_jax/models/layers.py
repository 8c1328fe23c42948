"""Layers shared by the networks: the discriminators' normalisation choices
(`config.model.d_norm`), the minibatch standard deviation
(`config.model.minibatch_std`), and class-conditional batch norm."""

import flax.linen as nn
import jax
import jax.numpy as jnp

D_NORMS = ("batch", "layer", "spectral", "none")
# Every BatchNorm here: running = BN_MOMENTUM * running + (1 - BN_MOMENTUM) *
# batch statistic (the generators' standing statistics rely on it).
BN_MOMENTUM = 0.9


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
    return nn.BatchNorm(use_running_average=not train,
                        momentum=BN_MOMENTUM)(y)
  if norm == "layer":
    return nn.LayerNorm()(y)
  raise ValueError(f"d_norm {norm!r} is not one of {D_NORMS}")


class MinibatchStd(nn.Module):
  """Appends the minibatch standard deviation as one more channel/feature.

  Karras et al. 2018 (ProGAN), section 3: within each group of `group_size`
  examples, the standard deviation of every feature (and position) over the
  group, averaged to one number, is appended to each member's features, so
  that the discriminator can see a batch's lack of variety. Works on (N, D)
  points and (N, H, W, C) maps. Groups are contiguous examples (ProGAN's are
  strided; batches are shuffled, so either is a random grouping, and
  contiguous groups stay on one device when the batch is sharded). The group
  is min(group_size, N), or the whole batch for group_size 0; N must be
  divisible by it.
  """
  group_size: int = 0

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    n = x.shape[0]
    g = min(self.group_size, n) if self.group_size > 0 else n
    if n % g:
      raise ValueError(f"minibatch std: batch {n} is not divisible by the "
                       f"group size {g}")
    groups = x.reshape(n // g, g, *x.shape[1:]).astype(jnp.float32)
    std = jnp.sqrt(jnp.var(groups, axis=1) + 1e-8)        # (N/g, ...)
    per_group = jnp.mean(std.reshape(n // g, -1), axis=1)  # (N/g,)
    per_example = jnp.repeat(per_group, g).astype(x.dtype)  # (N,)
    feature = jnp.broadcast_to(
        per_example.reshape(n, *([1] * (x.ndim - 1))), (*x.shape[:-1], 1))
    return jnp.concatenate([x, feature], axis=-1)


class ConditionalBatchNorm(nn.Module):
  """Batch norm whose scale and shift are chosen by the class label
  (de Vries et al. 2017; the generator of Miyato & Koyama 2018): x (B, ..., C)
  normalised with the batch statistics, then * gamma[y] + beta[y], with one
  (C,) gamma (initialised to 1) and beta (initialised to 0) per class.
  The statistics are the plain BatchNorm's (`BatchNorm_0/{mean,var}`)."""
  num_classes: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, labels: jax.Array,
               train: bool) -> jax.Array:
    y = nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM,
                     use_scale=False, use_bias=False, dtype=self.dtype)(x)
    c = x.shape[-1]
    gamma = nn.Embed(self.num_classes, c, embedding_init=nn.initializers.ones,
                     name="gamma")(labels)
    beta = nn.Embed(self.num_classes, c, embedding_init=nn.initializers.zeros,
                    name="beta")(labels)
    shape = (x.shape[0],) + (1,) * (x.ndim - 2) + (c,)
    return (y * gamma.reshape(shape).astype(y.dtype)
            + beta.reshape(shape).astype(y.dtype))
