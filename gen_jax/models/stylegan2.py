"""StyleGAN2 (Karras et al. 2020, "Analyzing and Improving the Image Quality
of StyleGAN"): a skip generator driven by styles, a residual critic.

- Mapping: z (B, z_dim) -> pixel norm -> `mapping_layers` equalised dense
  layers (lr multiplier 0.01, leaky ReLU) -> w (B, w_dim), broadcast to
  `num_ws` per-layer styles (B, num_ws, w_dim). In training mode `w_avg`
  (collection 'tracked', so it lives in the TrainState's model_state and is
  checkpointed) follows w: w_avg <- w_avg + (1 - w_avg_beta) (mean w - w_avg);
  with `mixing` > 0 a second z's styles replace those from a random layer on,
  for that share of the examples (style mixing regularisation; drawn per
  example, the official code draws once per batch). Outside training, `truncation` psi < 1
  moves every style toward w_avg: w_avg + psi (w - w_avg).
- Synthesis (paper fig. 7, "skip" generator): a learned 4x4 constant, then
  per resolution: [bilinear 2x upsample ->] modulated 3x3 conv (demodulated)
  -> + per-pixel noise * a learned per-channel strength -> bias -> leaky ReLU
  (x sqrt 2), twice (once at 4x4), and a modulated 1x1 toRGB (not
  demodulated); the RGB images of all resolutions, each upsampled to the
  next, are summed. `synthesis(..., return_rgbs=True)` also returns each
  resolution's own toRGB output (for progressive growing).
- Critic (paper fig. 7, "residual" D): 1x1 fromRGB, then per resolution
  conv 3x3 -> 2x2 average pool -> conv 3x3, plus a pooled 1x1 shortcut,
  summed and scaled by 1/sqrt(2) (the official code convolves at full
  resolution with stride 2 after a blur; pooling first is 4x cheaper); at 4x4 the minibatch std (groups of
  `mbstd_group`), conv 3x3, dense, dense(1).
- Equalised learning rate everywhere (ProGAN): a weight is stored as
  N(0, 1) / lr_mul and multiplied at run time by lr_mul / sqrt(fan_in), so
  its effective value starts at N(0, 1/fan_in) and Adam moves it lr * lr_mul
  per step, whatever its fan-in. Biases are stored / lr_mul likewise.

Simplifications against the official code (NVlabs/stylegan2-ada-pytorch):
bilinear resize (jax.image.resize) for the [1, 3, 3, 1] FIR up-/downsampling
filters (the same interior weights, edge-clamped instead of zero-padded),
average pooling for the critic's blur + stride 2, no conditioning, a
per-channel noise strength (StyleGAN's; StyleGAN2 learns one scalar).
Noise images come from the Flax rng stream 'noise', the mixing draw from
'mixing'.
"""

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen_jax.models.layers import MinibatchStd

RESOLUTIONS = (8, 16, 32, 64, 128, 256)
SQRT2 = math.sqrt(2.0)


def lrelu(x):
  """Leaky ReLU (0.2) with StyleGAN's gain sqrt(2) (He init for lrelu)."""
  return nn.leaky_relu(x, 0.2) * SQRT2


def num_ws(resolution: int) -> int:
  """Styles the synthesis network takes: two convs per resolution above 4,
  one at 4, and the last toRGB (each toRGB shares the next conv's style)."""
  return 2 * int(round(math.log2(resolution))) - 2


def widths(resolution: int, base: int, max_width: int) -> dict[int, int]:
  """Feature maps per resolution r (4, 8, ..., resolution): min(4 base / r,
  max_width), i.e. `base` at 4x4, halved per doubling (the official
  channel_base / r with channel_base = 4 base)."""
  out, r = {}, 4
  while r <= resolution:
    out[r] = max(1, min(base * 4 // r, max_width))
    r *= 2
  return out


def _std_normal(lr_mul: float):
  def init(key, shape, dtype=jnp.float32):
    return jax.random.normal(key, shape, dtype) / lr_mul
  return init


class EqualDense(nn.Module):
  """y = x (W * lr_mul / sqrt(fan_in)) + b * lr_mul; W stored N(0, 1)/lr_mul.

  `bias_init` is the effective initial bias."""
  features: int
  lr_mul: float = 1.0
  bias_init: float = 0.0
  use_bias: bool = True

  @nn.compact
  def __call__(self, x):
    fan_in = x.shape[-1]
    w = self.param("kernel", _std_normal(self.lr_mul), (fan_in,
                                                        self.features))
    y = x @ (w * (self.lr_mul / math.sqrt(fan_in)))
    if self.use_bias:
      b = self.param("bias", nn.initializers.constant(
          self.bias_init / self.lr_mul), (self.features,))
      y = y + b * self.lr_mul
    return y


class EqualConv(nn.Module):
  """A 'SAME' k x k convolution with equalised learning rate."""
  features: int
  kernel: int = 3
  use_bias: bool = True

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    w = self.param("kernel", _std_normal(1.0),
                   (self.kernel, self.kernel, c, self.features))
    y = jax.lax.conv_general_dilated(
        x, w * (1.0 / math.sqrt(c * self.kernel ** 2)), (1, 1), "SAME",
        dimension_numbers=("NHWC", "HWIO", "NHWC"))
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,))
    return y


def modulated_conv(x: jax.Array, weight: jax.Array, styles: jax.Array,
                   demodulate: bool = True, eps: float = 1e-8) -> jax.Array:
  """StyleGAN2's modulated convolution (paper eq. 1-3), 'SAME' padding.

  x (B, H, W, I), weight (k, k, I, O) (already scaled), styles (B, I):
  w'_ijk = s_i w_ijk, and with `demodulate` w''_ijk = w'_ijk /
  sqrt(sum_{i,k} w'_ijk^2 + eps), one kernel per example.

  Computed as conv(x * s) * d (the official code's `fused_modconv=False`
  form): scaling the input channels by s and the output channels by d is the
  same as convolving with the per-example kernel w'' (the convolution is
  linear in each input channel, and d_j multiplies output j), but it is one
  ordinary batched convolution. On XLA:CPU that is much the fastest of the
  three forms: value and gradient of 8 x 16x16x64 -> 64, 3x3, on 2 loaded
  cores: 5 ms this way, 95 ms as a grouped convolution
  (feature_group_count=B, the official fused form) and 94 ms as a vmap of
  per-example kernels. tests/test_stylegan2.py checks it against the
  per-example kernel.
  """
  y = jax.lax.conv_general_dilated(
      x * styles[:, None, None, :].astype(x.dtype), weight, (1, 1), "SAME",
      dimension_numbers=("NHWC", "HWIO", "NHWC"))
  if demodulate:
    # sum over (k, k, I) of (s_i w_ijk)^2 = sum_i s_i^2 sum_k w_ijk^2
    wsq = jnp.sum(jnp.square(weight), axis=(0, 1))          # (I, O)
    d = jax.lax.rsqrt(jnp.square(styles) @ wsq + eps)       # (B, O)
    y = y * d[:, None, None, :].astype(y.dtype)
  return y


class ModConv(nn.Module):
  """Modulated k x k convolution: the style of an affine map of w (bias
  init 1, so that s starts near 1), equalised weights, optional 2x bilinear
  upsampling before, then noise, bias and leaky ReLU (`activate`).
  toRGB is `ModConv(kernel=1, demodulate=False, noise=False, activate=False)`
  (whose style is also scaled by 1/sqrt(fan_in), as in the official code)."""
  features: int
  kernel: int = 3
  demodulate: bool = True
  up: bool = False
  noise: bool = True
  activate: bool = True

  @nn.compact
  def __call__(self, x, w):
    b, h, wd, c = x.shape
    if self.up:
      x = jax.image.resize(x, (b, 2 * h, 2 * wd, c), "bilinear")
    styles = EqualDense(c, bias_init=1.0, name="affine")(w)   # (B, I)
    weight = self.param("kernel", _std_normal(1.0),
                        (self.kernel, self.kernel, c, self.features))
    gain = 1.0 / math.sqrt(c * self.kernel ** 2)
    if self.demodulate:
      weight = weight * gain  # demodulation removes the scale anyway
    else:
      styles = styles * gain
    y = modulated_conv(x, weight, styles, self.demodulate)
    if self.noise:
      noise = jax.random.normal(self.make_rng("noise"), (*y.shape[:3], 1),
                                y.dtype)
      strength = self.param("noise_strength", nn.initializers.zeros,
                            (self.features,))
      y = y + noise * strength
    y = y + self.param("bias", nn.initializers.zeros, (self.features,))
    return lrelu(y) if self.activate else y


class Generator(nn.Module):
  """z (B, z_dim), cond (None) -> images (B, R, R, channels), linear output
  (no tanh, as in the paper).

  `train`: w_avg is updated and style mixing applies; otherwise truncation
  applies. Rng streams: 'noise' always, 'mixing' in training with mixing >
  0. Methods `mapping` (z -> ws) and `synthesis` (ws -> image) are the two
  halves, for the path-length regulariser and for truncation by hand.
  """
  resolution: int = 16
  channels: int = 3
  z_dim: int = 512
  w_dim: int = 512
  mapping_layers: int = 8
  mapping_lr_mul: float = 0.01
  width: int = 512          # feature maps at 4x4 (halved per doubling)
  max_width: int = 512
  mixing: float = 0.9
  truncation: float = 1.0   # psi outside training; 1: off
  w_avg_beta: float = 0.995

  def setup(self):
    self.mapping_net = [EqualDense(self.w_dim, lr_mul=self.mapping_lr_mul,
                                   name=f"map{i}")
                        for i in range(self.mapping_layers)]
    self.w_avg = self.variable("tracked", "w_avg",
                               lambda: jnp.zeros((self.w_dim,), jnp.float32))
    self.const = self.param("const", nn.initializers.normal(1.0),
                            (4, 4, self.width_at(4)))
    res = [4 * 2 ** i for i in range(self.num_blocks)]
    self.convs = [[ModConv(self.width_at(r), up=(j == 0 and r > 4),
                           name=f"b{r}_conv{j}")
                   for j in ((1,) if r == 4 else (0, 1))] for r in res]
    self.to_rgbs = [ModConv(self.channels, kernel=1, demodulate=False,
                            noise=False, activate=False, name=f"b{r}_torgb")
                    for r in res]

  @property
  def num_blocks(self) -> int:
    return int(round(math.log2(self.resolution))) - 1

  @property
  def num_ws(self) -> int:
    return num_ws(self.resolution)

  def width_at(self, r: int) -> int:
    return widths(self.resolution, self.width, self.max_width)[r]

  def _w(self, z):
    x = z.astype(jnp.float32)
    x = x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + 1e-8)
    for layer in self.mapping_net:
      x = lrelu(layer(x))
    return x

  def mapping(self, z, train: bool = False, truncation: float | None = None):
    """z (B, z_dim) -> ws (B, num_ws, w_dim). In training: updates w_avg
    (collection 'tracked') and, with probability `mixing`, takes the styles
    from a random layer on from a second z (the same z drawn again by the
    rng stream 'mixing'). Otherwise: truncation toward w_avg with psi
    `truncation` (default: the field)."""
    w_avg = self.w_avg
    w = self._w(z)
    ws = jnp.repeat(w[:, None], self.num_ws, axis=1)
    if train and not self.is_initializing():
      w_avg.value = w_avg.value + (1.0 - self.w_avg_beta) * (
          jnp.mean(jax.lax.stop_gradient(w), 0) - w_avg.value)
    if train and self.mixing > 0:
      k_z, k_p, k_c = jax.random.split(self.make_rng("mixing"), 3)
      w2 = self._w(jax.random.normal(k_z, z.shape, jnp.float32))
      n = z.shape[0]
      # the layer from which on the second styles apply (num_ws: none)
      cut = jax.random.randint(k_c, (n,), 1, self.num_ws)
      cut = jnp.where(jax.random.uniform(k_p, (n,)) < self.mixing, cut,
                      self.num_ws)
      later = jnp.arange(self.num_ws)[None, :] >= cut[:, None]
      ws = jnp.where(later[..., None], w2[:, None], ws)
    psi = self.truncation if truncation is None else truncation
    if not train and psi != 1.0:
      ws = w_avg.value + psi * (ws - w_avg.value)
    return ws

  def synthesis(self, ws, return_rgbs: bool = False):
    """ws (B, num_ws, w_dim) -> image (B, R, R, channels); with
    `return_rgbs` also the list of each resolution's toRGB output
    (4x4, 8x8, ...; before the sum with the upsampled lower ones)."""
    b = ws.shape[0]
    x = jnp.broadcast_to(self.const, (b, *self.const.shape))
    img, rgbs, i = None, [], 0
    for convs, to_rgb in zip(self.convs, self.to_rgbs):
      for conv in convs:
        x = conv(x, ws[:, i])
        i += 1
      rgb = to_rgb(x, ws[:, i])
      rgbs.append(rgb)
      if img is not None:
        h = img.shape[1]
        img = jax.image.resize(img, (b, 2 * h, 2 * h, img.shape[-1]),
                               "bilinear")
        img = img + rgb
      else:
        img = rgb
    return (img, rgbs) if return_rgbs else img

  def __call__(self, z, cond=None, train: bool = True):
    del cond  # unconditional
    return self.synthesis(self.mapping(z, train))


class Discriminator(nn.Module):
  """images (B, R, R, C), cond (None) -> logits (B,): StyleGAN2's residual
  critic. `per_example`: the minibatch std held fixed (gradient penalties,
  models/layers.py)."""
  width: int = 512       # feature maps at 4x4 (halved per doubling)
  max_width: int = 512
  mbstd_group: int = 4

  @nn.compact
  def __call__(self, x, cond=None, train: bool = True,
               per_example: bool = False):
    del cond, train
    res = x.shape[1]
    wd = widths(res, self.width, self.max_width)
    x = lrelu(EqualConv(wd[res], 1, name="fromrgb")(x.astype(jnp.float32)))
    r = res
    while r > 4:
      pool = lambda v: nn.avg_pool(v, (2, 2), (2, 2))
      skip = EqualConv(wd[r // 2], 1, use_bias=False,
                       name=f"b{r}_skip")(pool(x))
      y = lrelu(EqualConv(wd[r], 3, name=f"b{r}_conv0")(x))
      y = lrelu(EqualConv(wd[r // 2], 3, name=f"b{r}_conv1")(pool(y)))
      x = (skip + y) * (1.0 / SQRT2)
      r //= 2
    x = MinibatchStd(self.mbstd_group)(x, per_example)
    x = lrelu(EqualConv(wd[4], 3, name="epilogue_conv")(x))
    x = lrelu(EqualDense(wd[4], name="epilogue_fc")(x.reshape(x.shape[0],
                                                              -1)))
    return EqualDense(1, name="out")(x)[:, 0]
