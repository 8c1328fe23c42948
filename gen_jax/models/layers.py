"""Layers shared by the networks: the discriminators' normalisation choices
(`config.model.d_norm`), the minibatch standard deviation
(`config.model.minibatch_std`), and class-conditional batch norm.

`per_example=True` (the gradient penalties' pass, trainers/gan.py) holds
every batch statistic (batch norm's mean and variance, the minibatch std)
fixed at this batch's values: the forward pass is unchanged, but each logit
is then a function of its own example only, so the gradient of the summed
logits is every example's own input gradient (penalties.input_gradients).
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

# `layer` is Gulrajani et al.'s (over H, W, C); `layer_channel` normalises
# each position over channels only (flax's nn.LayerNorm; `layer` before
# issue 18).
D_NORMS = ("batch", "layer", "spectral", "none", "layer_channel")
# Every BatchNorm here: running = BN_MOMENTUM * running + (1 - BN_MOMENTUM) *
# batch statistic (the generators' standing statistics rely on it).
BN_MOMENTUM = 0.9
# WGAN-GP's released code (tflib/ops/layernorm.py) uses 1e-5.
LAYER_NORM_EPSILON = 1e-5


class BatchNorm(nn.BatchNorm):
  """nn.BatchNorm (same variables, names and numbers) whose batch statistics
  can be held fixed: with `fixed_stats` (in training mode) it normalises with
  this batch's mean and variance as constants, without updating the running
  averages. Feature axis: the last."""

  @nn.compact
  def __call__(self, x, use_running_average=None, *, fixed_stats=False):
    running = nn.merge_param("use_running_average", self.use_running_average,
                             use_running_average)
    if not fixed_stats or running:
      return super().__call__(x, use_running_average)
    xf = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    axes = tuple(range(x.ndim - 1))
    # flax's statistics (its default "fast variance"), as constants.
    mean = jnp.mean(xf, axes)
    var = jnp.maximum(0.0, jnp.mean(xf * xf, axes) - mean * mean)
    mean, var = jax.lax.stop_gradient((mean, var))
    mul = jax.lax.rsqrt(var + self.epsilon)
    features = (x.shape[-1],)
    if self.use_scale:
      mul = mul * self.param("scale", self.scale_init, features,
                             self.param_dtype)
    y = (xf - mean) * mul
    if self.use_bias:
      y = y + self.param("bias", self.bias_init, features, self.param_dtype)
    return y.astype(self.dtype or y.dtype)


class SpectralNorm(nn.SpectralNorm):
  """Spectral normalisation (Miyato et al. 2018) of the wrapped layer.

  Every forward pass uses W / sigma(W), sigma from one power iteration
  starting at the vector `u` kept in 'batch_stats' (stored when
  `update_stats`, i.e. in training), as flax's nn.SpectralNorm does, with the
  same variables; unlike it, the stored W is the layer's own initialisation
  (flax stores W / sigma at init, which rescales the configured N(0, 0.02)
  weights by 1/sigma and with it the relative size of Adam's steps).
  """

  @nn.compact
  def __call__(self, *args, update_stats: bool, **kwargs):
    if self.is_initializing():
      self.layer_instance(*args, **kwargs)  # the raw, configured weights
    normalize = lambda vs: jax.tree_util.tree_map_with_path(
        functools.partial(self._spectral_normalize,
                          update_stats=update_stats), vs)
    return nn.map_variables(
        lambda layer: layer(*args, **kwargs), "params",
        trans_in_fn=normalize, init=False, mutable=False)(self.layer_instance)


def normalized(layer: nn.Module, x: jax.Array, norm: str, train: bool,
               normalize_output: bool = True,
               per_example: bool = False,
               name: str | None = None) -> jax.Array:
  """Applies `layer` to `x` with the discriminator normalisation `norm`.

  'spectral' wraps the layer (its power-iteration vector lives in the
  'batch_stats' collection); 'batch', 'layer' and 'layer_channel' normalise
  the layer's output unless `normalize_output` is False (DCGAN leaves the
  first and last layers unnormalised). 'layer' normalises each example over
  all its features (H, W, C), with a scale and offset per channel, as
  Gulrajani et al.'s released WGAN-GP code does; 'layer_channel' normalises
  each position over its channels. `per_example`: see the module docstring.
  `name` names the normalisation module (default: Flax's numbering by call
  order, which a network that skips layers, e.g. a progressive critic's
  lower levels, cannot keep stable).
  """
  if norm == "spectral":
    return SpectralNorm(layer, name=name)(x, update_stats=train)
  y = layer(x)
  if not normalize_output or norm == "none":
    return y
  if norm == "batch":
    return BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM,
                     name=name)(y, fixed_stats=per_example)
  if norm == "layer":
    return nn.LayerNorm(epsilon=LAYER_NORM_EPSILON,
                        reduction_axes=tuple(range(1, y.ndim)),
                        feature_axes=-1, name=name)(y)
  if norm == "layer_channel":
    return nn.LayerNorm(name=name)(y)
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
  def __call__(self, x: jax.Array, per_example: bool = False) -> jax.Array:
    n = x.shape[0]
    g = min(self.group_size, n) if self.group_size > 0 else n
    if n % g:
      raise ValueError(f"minibatch std: batch {n} is not divisible by the "
                       f"group size {g}")
    groups = x.reshape(n // g, g, *x.shape[1:]).astype(jnp.float32)
    std = jnp.sqrt(jnp.var(groups, axis=1) + 1e-8)        # (N/g, ...)
    if per_example:  # a constant of this batch (module docstring)
      std = jax.lax.stop_gradient(std)
    per_group = jnp.mean(std.reshape(n // g, -1), axis=1)  # (N/g,)
    each = jnp.repeat(per_group, g).astype(x.dtype)       # (N,)
    feature = jnp.broadcast_to(
        each.reshape(n, *([1] * (x.ndim - 1))), (*x.shape[:-1], 1))
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
