"""ResNet generator and discriminator of SNGAN and BigGAN (16, 32, 64 px).

Layouts of Miyato et al. 2018 (SNGAN, appendix B.4, as in Mimicry and
StudioGAN) and Brock et al. 2019 (BigGAN, appendix B):

- generator: z -> dense -> 4x4 map -> n up-blocks (16 px: 2, 32 px: 3,
  64 px: 4) -> BN -> ReLU -> 3x3 conv -> tanh. An up-block is
  BN -> ReLU -> 2x nearest upsample -> 3x3 conv -> BN -> ReLU -> 3x3 conv,
  plus the shortcut upsample -> 1x1 conv.
- discriminator: down- (or plain) blocks -> ReLU -> global sum pooling ->
  dense(1), plus the projection <embed(y), phi(x)> (Miyato & Koyama 2018).
  A block is ReLU -> 3x3 conv -> ReLU -> 3x3 conv -> 2x2 average pool, plus
  the shortcut 1x1 conv -> pool; the first block has no leading ReLU and
  pools before its shortcut conv (SNGAN's "optimized" block).

The generator's batch norms are one of three kinds:

- plain (unconditional, `num_classes` 0 and not `hierarchical`);
- per-class gain and bias tables (`shared_dim` 0: SNGAN's cGAN, de Vries et
  al. 2017; `layers.ConditionalBatchNorm`);
- BigGAN's: gain 1 + W_g c and bias W_b c, linear in a block's conditioning
  vector c = [shared embedding of y (`shared_dim`), the block's chunk of z
  (`hierarchical`)] (`LinearConditionalBatchNorm`).

With `hierarchical`, z (B, d) is split into n + 1 chunks: the first feeds
the dense layer, chunk i + 1 conditions block i (BigGAN section 4 "skip-z").
Spectral norm is on every convolution, dense layer and the projection
embedding of the critic, and, with `spectral_norm`, on the generator's
(BigGAN). `attention` (a resolution, 0: none) adds a SAGAN self-attention
block after the block whose output has that resolution.
"""

import itertools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen_jax.models import progressive
from gen_jax.models.layers import (BN_MOMENTUM, ConditionalBatchNorm,
                                   MinibatchStd, SpectralNorm)

RESOLUTIONS = (16, 32, 64)
_INIT = nn.initializers.xavier_uniform()
_EMBED_INIT = nn.initializers.normal(0.02)


def num_up_blocks(resolution: int) -> int:
  """The generator's up-blocks from 4x4 to `resolution`."""
  if resolution not in RESOLUTIONS:
    raise ValueError(f"ResNet resolution {resolution} is not one of "
                     f"{RESOLUTIONS}")
  return int(round(math.log2(resolution // 4)))


def levels(resolution: int) -> tuple[int, ...]:
  """Resolutions of the progressive levels: 4, 8, ..., resolution."""
  return tuple(4 * 2 ** k for k in range(num_up_blocks(resolution) + 1))


def _critic_input_sizes(size: int, down) -> list[int]:
  """The input resolution of each critic block on `size` px images."""
  out = []
  for d in down:
    out.append(size)
    size //= 2 if d else 1
  return out


def critic_entry(size: int, down, resolution: int) -> int | None:
  """The critic block a progressive level at `resolution` px enters at: the
  first reading that resolution (None: no block does, the critic has
  pooled below it first)."""
  sizes = _critic_input_sizes(size, down)
  return sizes.index(resolution) if resolution in sizes else None


def critic_attention_block(size: int, down, attention: int) -> int | None:
  """The block after which the critic's self-attention sits: the first whose
  output has `attention` px (None: none)."""
  for i, s in enumerate(_critic_input_sizes(size, down)):
    if attention and s // (2 if down[i] else 1) == attention:
      return i
  return None


def z_chunks(dim: int, blocks: int) -> list[int]:
  """Sizes of the hierarchical latent's chunks: blocks + 1 parts; the first
  (the dense layer's) takes the remainder of dim / (blocks + 1)."""
  each = dim // (blocks + 1)
  return [dim - blocks * each] + [each] * blocks


def _apply(layer: nn.Module, x, sn: bool, train: bool):
  return SpectralNorm(layer)(x, update_stats=train) if sn else layer(x)


class Conv(nn.Module):
  """A k x k 'SAME' convolution, spectrally normalised when `sn`."""
  features: int
  kernel: int = 3
  sn: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    return _apply(nn.Conv(self.features, (self.kernel, self.kernel),
                          padding="SAME", kernel_init=_INIT, dtype=self.dtype),
                  x, self.sn, train)


class Dense(nn.Module):
  features: int
  sn: bool = True
  use_bias: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    return _apply(nn.Dense(self.features, use_bias=self.use_bias,
                           kernel_init=_INIT, dtype=self.dtype),
                  x, self.sn, train)


class LinearConditionalBatchNorm(nn.Module):
  """BigGAN's conditional batch norm: x (B, ..., C) normalised with the batch
  statistics, then * (1 + W_g c) + W_b c for the conditioning vector c
  (B, E). The statistics are `BatchNorm_0/{mean,var}`."""
  sn: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, c, train: bool):
    y = nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM,
                     use_scale=False, use_bias=False, dtype=self.dtype)(x)
    ch = x.shape[-1]
    gain = 1.0 + Dense(ch, self.sn, use_bias=False, dtype=self.dtype,
                       name="gain")(c, train)
    bias = Dense(ch, self.sn, use_bias=False, dtype=self.dtype,
                 name="bias")(c, train)
    shape = (x.shape[0],) + (1,) * (x.ndim - 2) + (ch,)
    return y * gain.reshape(shape).astype(y.dtype) + bias.reshape(
        shape).astype(y.dtype)


class GBatchNorm(nn.Module):
  """The generator's batch norm; `kind` 'plain', 'class' (cond: labels (B,))
  or 'linear' (cond: vectors (B, E))."""
  kind: str
  num_classes: int = 0
  sn: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, cond, train: bool):
    if self.kind == "class":
      return ConditionalBatchNorm(self.num_classes, dtype=self.dtype)(
          x, cond, train)
    if self.kind == "linear":
      return LinearConditionalBatchNorm(self.sn, self.dtype)(x, cond, train)
    return nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM,
                        dtype=self.dtype)(x)


def upsample(x):
  """2x nearest-neighbour upsampling of (B, H, W, C)."""
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def downsample(x):
  """2x2 average pooling of (B, H, W, C)."""
  return nn.avg_pool(x, (2, 2), (2, 2))


class GBlock(nn.Module):
  """(B, H, W, Cin) -> (B, 2H, 2W, features); see the module docstring."""
  features: int
  bn_kind: str = "plain"
  num_classes: int = 0
  sn: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, cond, train: bool):
    bn = lambda name: GBatchNorm(self.bn_kind, self.num_classes, self.sn,
                                 self.dtype, name=name)
    h = nn.relu(bn("bn0")(x, cond, train))
    h = Conv(self.features, 3, self.sn, self.dtype, name="conv0")(
        upsample(h), train)
    h = nn.relu(bn("bn1")(h, cond, train))
    h = Conv(self.features, 3, self.sn, self.dtype, name="conv1")(h, train)
    s = Conv(self.features, 1, self.sn, self.dtype, name="shortcut")(
        upsample(x), train)
    return h + s


class DBlock(nn.Module):
  """(B, H, W, Cin) -> (B, H/2, W/2, features) (or (B, H, W, features)
  without `down`); `first`: SNGAN's optimized first block."""
  features: int
  down: bool = True
  first: bool = False
  sn: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    h = x if self.first else nn.relu(x)
    h = Conv(self.features, 3, self.sn, self.dtype, name="conv0")(h, train)
    h = Conv(self.features, 3, self.sn, self.dtype, name="conv1")(
        nn.relu(h), train)
    if self.down:
      h = downsample(h)
    s = x
    if self.first:
      s = Conv(self.features, 1, self.sn, self.dtype, name="shortcut")(
          downsample(s) if self.down else s, train)
    else:
      if self.down or x.shape[-1] != self.features:
        s = Conv(self.features, 1, self.sn, self.dtype, name="shortcut")(
            s, train)
      if self.down:
        s = downsample(s)
    return h + s


class SelfAttention(nn.Module):
  """SAGAN's self-attention (Zhang et al. 2019), as in BigGAN: x (B, H, W, C)
  -> x + gamma * o, with queries theta(x) (C/8), keys phi(x) and values g(x)
  (C/2) max-pooled 2x2, o = conv1x1(softmax(theta phi^T) g). gamma starts at
  0, so the block is the identity at initialisation. C >= 8, H and W even."""
  sn: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    b, h, w, c = x.shape
    conv = lambda f, name: Conv(f, 1, self.sn, self.dtype, name=name)
    pool = lambda v: nn.max_pool(v, (2, 2), (2, 2))
    theta = conv(c // 8, "theta")(x, train).reshape(b, h * w, c // 8)
    phi = pool(conv(c // 8, "phi")(x, train)).reshape(b, -1, c // 8)
    g = pool(conv(c // 2, "g")(x, train)).reshape(b, -1, c // 2)
    logits = jnp.einsum("bqd,bkd->bqk", theta.astype(jnp.float32),
                        phi.astype(jnp.float32))
    beta = jax.nn.softmax(logits, axis=-1).astype(g.dtype)
    o = jnp.einsum("bqk,bkd->bqd", beta, g).reshape(b, h, w, c // 2)
    o = conv(c, "out")(o, train)
    gamma = self.param("gamma", nn.initializers.zeros, ())
    return x + gamma.astype(o.dtype) * o


class ToRGB(nn.Module):
  """A progressive generator's output head below the top level: BN -> ReLU
  -> 1x1 conv to `channels` (the top level's is bn_out, conv_out)."""
  channels: int
  sn: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    x = nn.relu(nn.BatchNorm(use_running_average=not train,
                             momentum=BN_MOMENTUM, dtype=self.dtype,
                             name="bn")(x))
    return Conv(self.channels, 1, self.sn, self.dtype, name="conv")(
        x, train).astype(jnp.float32)


class Generator(nn.Module):
  """z (B, noise_dim), labels cond (B,) or None -> images (B, resolution,
  resolution, channels) in [-1, 1].

  The 4x4 map has width `width * mult[0]` and block i's output `width *
  mult[i + 1]` (`mult` empty: all `width`; BigGAN's 64 px: (16, 8, 4, 2, 1)).
  Conditional (`num_classes` > 0): per-class batch-norm tables, or with
  `shared_dim` > 0 a shared embedding (num_classes, shared_dim) feeding every
  block's linear conditional batch norm.

  `progressive` (models/progressive.py): level k (4 * 2^k px) ends in a
  `ToRGB` head `to_rgb{k}` of the 4x4 map (k = 0) or block k-1's output;
  `level`/`alpha` pick the level and the fade (tanh after the mix).
  """
  resolution: int
  channels: int
  width: int = 256
  mult: tuple[int, ...] = ()
  num_classes: int = 0
  shared_dim: int = 0
  hierarchical: bool = False
  spectral_norm: bool = False
  attention: int = 0
  progressive: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z: jax.Array, cond: jax.Array | None = None,
               train: bool = True, level: int | None = None,
               alpha: jax.Array | None = None) -> jax.Array:
    n = num_up_blocks(self.resolution)
    if (level is not None or alpha is not None) and not self.progressive:
      raise ValueError("level/alpha need a progressive generator")
    top = n if level is None else level
    mult = self.mult or (1,) * (n + 1)
    if len(mult) != n + 1:
      raise ValueError(f"{self.resolution} px needs {n + 1} generator "
                       f"widths, got mult={mult}")
    if self.num_classes and cond is None:
      raise ValueError("a conditional generator needs labels (cond)")
    sn = self.spectral_norm
    if self.hierarchical:
      bounds = list(itertools.accumulate(z_chunks(z.shape[-1], n)))[:-1]
      zs = jnp.split(z, bounds, axis=-1)
    else:
      zs = [z] + [None] * n
    shared = None
    if self.num_classes and self.shared_dim:
      shared = nn.Embed(self.num_classes, self.shared_dim,
                        embedding_init=_EMBED_INIT, name="shared")(cond)
    if shared is not None or self.hierarchical:
      kind = "linear"
      conds = [jnp.concatenate([v for v in (shared, zi) if v is not None],
                               axis=-1) for zi in zs[1:]]
    elif self.num_classes:
      kind, conds = "class", [cond] * n
    else:
      kind, conds = "plain", [None] * n
    width = self.width * mult[0]
    x = Dense(4 * 4 * width, sn, dtype=self.dtype, name="dense")(zs[0], train)
    x = x.reshape(z.shape[0], 4, 4, width)
    to_rgb = lambda k, h: ToRGB(self.channels, sn, self.dtype,
                                name=f"to_rgb{k}")(h, train)
    features, old = [x], None
    for i in range(top):  # block i: level i -> level i + 1
      if i == top - 1 and alpha is not None:
        old = progressive.upsample(to_rgb(i, x))
      x = GBlock(self.width * mult[i + 1], kind, self.num_classes, sn,
                 self.dtype, name=f"block{i}")(x, conds[i], train)
      if self.attention == x.shape[1]:  # once: resolutions double
        x = SelfAttention(sn, self.dtype, name="attention")(x, train)
      features.append(x)
    if self.progressive and self.is_initializing():
      for k, h in enumerate(features[:top]):  # every level's head exists
        to_rgb(k, h)
    if top < n:
      x = to_rgb(top, x)
    else:
      x = nn.relu(nn.BatchNorm(use_running_average=not train,
                               momentum=BN_MOMENTUM, dtype=self.dtype,
                               name="bn_out")(x))
      x = Conv(self.channels, 3, sn, self.dtype, name="conv_out")(
          x, train).astype(jnp.float32)
    if old is not None:
      x = progressive.lerp(old, x, alpha)
    return jnp.tanh(x.astype(jnp.float32))


class Discriminator(nn.Module):
  """images (B, H, W, C), labels cond (B,) or None -> logits (B,), or
  (logits, class logits) with `aux_classes`.

  Block i has width `width * mult[i]` and halves the resolution when
  `down[i]`. `norm` 'spectral' (SNGAN/BigGAN) or 'none'. phi(x) is the
  ReLU'd last feature map summed over positions. `minibatch_std` (None: off)
  appends ProGAN's minibatch std channel to the last map; `per_example` holds
  its statistic fixed (models/layers.py; the critic has no batch norm).

  `progressive`: level k (4 * 2^k px, at most `resolution`) enters at the
  first block that reads that resolution (`critic_entry`), through a 1x1
  fromRGB convolution `from_rgb{k}`; the top level enters at block 0. During
  a fade, the input of the lower level's entry block is mixed with that
  level's fromRGB of the average-pooled image.
  """
  width: int = 128
  mult: tuple[int, ...] = (1, 1, 1, 1)
  down: tuple[bool, ...] = (True, True, False, False)
  norm: str = "spectral"
  attention: int = 0
  minibatch_std: int | None = None
  num_classes: int = 0
  projection: bool = False
  aux_classes: int = 0
  progressive: bool = False
  resolution: int = 0   # the top level's (progressive); 0: x's
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, cond: jax.Array | None = None,
               train: bool = True, per_example: bool = False,
               level: int | None = None, alpha: jax.Array | None = None):
    if (level is not None or alpha is not None) and not self.progressive:
      raise ValueError("level/alpha need a progressive discriminator")
    sn = self.norm == "spectral"
    size = self.resolution or x.shape[1]
    n = num_up_blocks(size) if self.progressive else 0
    top = n if level is None else level
    entry = lambda k: critic_entry(size, self.down, 4 * 2 ** k)
    after = critic_attention_block(size, self.down, self.attention)

    def from_rgb(k, img):  # into block entry(k), at its input width
      return Conv(self.width * self.mult[entry(k) - 1], 1, sn, self.dtype,
                  name=f"from_rgb{k}")(img, train)

    img = x.astype(self.dtype)
    start = 0 if top == n else entry(top)
    h = img if top == n else from_rgb(top, img)
    mix_at = entry(top - 1) if alpha is not None else None
    for i in range(start, len(self.down)):
      if i == mix_at:
        h = progressive.lerp(from_rgb(top - 1, progressive.downsample(img)),
                             h, alpha)
      h = DBlock(self.width * self.mult[i], self.down[i], i == 0, sn,
                 self.dtype, name=f"block{i}")(h, train)
      if i == after:
        h = SelfAttention(sn, self.dtype, name="attention")(h, train)
    if self.progressive and self.is_initializing():
      for k in range(top):  # every level's head exists
        from_rgb(k, progressive.resize(img, 4 * 2 ** k))
    if self.minibatch_std is not None:
      h = MinibatchStd(self.minibatch_std)(h, per_example)
    phi = jnp.sum(nn.relu(h).astype(jnp.float32), axis=(1, 2))
    logits = Dense(1, sn, dtype=jnp.float32, name="out")(phi, train)[:, 0]
    if self.projection:
      if cond is None:
        raise ValueError("a projection discriminator needs labels (cond)")
      embed = _apply(nn.Embed(self.num_classes, phi.shape[-1],
                              embedding_init=_INIT, name="projection"),
                     cond, sn, train)
      logits = logits + jnp.sum(embed.astype(jnp.float32) * phi, axis=-1)
    if self.aux_classes:
      return logits, Dense(self.aux_classes, sn, dtype=jnp.float32,
                           name="aux_classifier")(phi, train)
    return logits
