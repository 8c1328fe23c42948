"""StyleGAN2 (Karras et al. 2020, "Analyzing and Improving the Image Quality
of StyleGAN"): a skip generator driven by styles, a residual critic.

- Mapping: z (B, z_dim) -> 2nd-moment (pixel) norm -> `mapping_layers`
  equalised dense layers (lr multiplier 0.01, leaky ReLU) -> w (B, w_dim),
  broadcast to `num_ws` per-layer styles (B, num_ws, w_dim). Conditional
  (`num_classes` > 0, as stylegan2-ada-pytorch): the one-hot label through
  an equalised dense layer (w_dim), 2nd-moment normalised, concatenated
  with the normalised z before the layers. In training mode `w_avg`
  (collection 'tracked', so it lives in the TrainState's model_state and is
  checkpointed) follows w: w_avg <- w_avg + (1 - w_avg_beta) (mean w -
  w_avg). Style mixing regularisation as the official code: with
  probability `mixing`, drawn once per batch, a second z's styles (same
  labels) replace those from a cutoff layer on, the cutoff also one draw
  for the whole batch (the paper's text reads "a given percentage of
  images"; the released code, which the published numbers come from, mixes
  whole batches). Outside training, `truncation` psi < 1 moves every style
  toward w_avg: w_avg + psi (w - w_avg).
- Synthesis (paper fig. 7, "skip" generator): a learned 4x4 constant, then
  per resolution: [FIR 2x upsample ->] modulated 3x3 conv (demodulated)
  -> + per-pixel noise * a learned scalar strength (one per layer) -> bias
  -> leaky ReLU (x sqrt 2), twice (once at 4x4), and a modulated 1x1 toRGB
  (not demodulated); the RGB images of all resolutions, each FIR-upsampled
  to the next, are summed. `synthesis(..., return_rgbs=True)` also returns
  each resolution's own toRGB output.
- Progressive growing (models/progressive.py; not in the StyleGAN2 paper,
  which replaced it by the skip generator, but the same schedule as the
  other growable architectures): the generator stops at a level's block,
  fading its toRGB in; the critic gets a fromRGB head per level.
- Critic (paper fig. 7, "residual" D): 1x1 fromRGB, then per resolution
  conv 3x3 -> FIR blur and conv 3x3 with stride 2, plus a shortcut of a FIR
  2x downsample and a 1x1 conv, summed and scaled by 1/sqrt(2); at 4x4 the
  minibatch std (groups of `mbstd_group`), conv 3x3, dense, dense(1) or,
  conditional, the projection on a mapping of the label (Discriminator).
- FIR resampling is the official upfirdn2d with the [1, 3, 3, 1] filter
  (separable, normalised): upsample = zero-insert, pad (2, 1), filter with
  gain 4; downsample = pad (1, 1), filter, stride 2; the blur before a
  stride-2 k x k conv pads k // 2 + 1 a side. Written as shifted slices
  and adds (tests/test_stylegan2.py checks it against a NumPy upfirdn2d).
- Equalised learning rate everywhere (ProGAN): a weight is stored as
  N(0, 1) / lr_mul and multiplied at run time by lr_mul / sqrt(fan_in), so
  its effective value starts at N(0, 1/fan_in) and Adam moves it lr * lr_mul
  per step, whatever its fan-in. Biases are stored / lr_mul likewise.

Differences from the official code (NVlabs/stylegan2-ada-pytorch).
The same function, computed differently: the up-conv is upsample2d (one
extra row/column a side) then a 'VALID' conv at the output resolution (the
official transposed stride-2 conv + filter is the same operator, tested,
with 1/4 of the multiply-adds: a possible speed-up, not tried); the
modulated conv is the `fused_modconv=False` form; 1x1 convs are matmuls.
Different numbers: no float16 layers and no conv_clamp (the official code
runs the top 4 resolutions in float16, activations clamped to +-256; here
`dtype=bfloat16` runs every synthesis and critic convolution in bfloat16,
which has float32's range); the
critic is always the residual one (the official `--cfg=cifar` uses 'orig');
the lazy regularisers join the main step rather than running as extra
optimizer steps with rescaled Adam (configs/stylegan2.py). Noise images
come from the Flax rng stream 'noise', the mixing draws from 'mixing'.
"""

import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen_jax.models import progressive
from gen_jax.models.layers import MinibatchStd

RESOLUTIONS = (8, 16, 32, 64, 128, 256)
SQRT2 = math.sqrt(2.0)


def levels(resolution: int) -> tuple[int, ...]:
  """Resolutions of the progressive levels: 4, 8, ..., resolution (one per
  synthesis block)."""
  return tuple(4 * 2 ** k for k in range(int(round(math.log2(resolution)))
                                          - 1))


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


# -- FIR resampling (the official upfirdn2d with its [1, 3, 3, 1] filter) ----

FIR_TAPS = (1.0, 3.0, 3.0, 1.0)


def _upfirdn_axis(x: jax.Array, axis: int, up: int, down: int,
                  pad: tuple[int, int], gain: float) -> jax.Array:
  """upfirdn along one axis with the normalised [1, 3, 3, 1] filter times
  `gain`: insert up - 1 zeros after each sample, zero-pad (before, after),
  correlate (the filter is symmetric, so this is also the convolution), keep
  every `down`-th sample. Shifted slices and adds (4 multiply-adds per
  output), not a convolution: nothing for XLA:CPU to lower badly."""
  n = x.shape[axis]
  if up > 1:
    x = jnp.stack([x] + [jnp.zeros_like(x)] * (up - 1), axis=axis + 1)
    x = x.reshape(*x.shape[:axis], n * up, *x.shape[axis + 2:])
  pads = [(0, 0)] * x.ndim
  pads[axis] = pad
  x = jnp.pad(x, pads)
  m = x.shape[axis] - len(FIR_TAPS) + 1
  y = sum((t * gain / sum(FIR_TAPS))
          * jax.lax.slice_in_dim(x, k, k + m, axis=axis)
          for k, t in enumerate(FIR_TAPS))
  return jax.lax.slice_in_dim(y, 0, m, down, axis=axis) if down > 1 else y


def upfirdn2d(x: jax.Array, up: int = 1, down: int = 1,
              pad: tuple[int, int] = (0, 0), gain: float = 1.0) -> jax.Array:
  """The official upfirdn2d (stylegan2-ada-pytorch torch_utils/ops) on NHWC
  x with the separable 2D filter outer([1,3,3,1], [1,3,3,1]) / 64 times
  `gain`, the same `up`, `down` and padding on H and W."""
  g = math.sqrt(gain)   # the 2D gain, split over the two passes
  x = _upfirdn_axis(x, 1, up, down, pad, g)
  return _upfirdn_axis(x, 2, up, down, pad, g)


def _upsample_axis(x: jax.Array, axis: int, e: int) -> jax.Array:
  """y[j], j = -e .. 2n - 1 + e, of upsample2d along `axis`."""
  n, m = x.shape[axis], x.shape[axis] + 2 * e
  pads = [(0, 0)] * x.ndim
  pads[axis] = (1 + e, 1 + e)
  xp = jnp.pad(x, pads)
  # at(k)[i] = x[i + k - 1], i = -e .. n - 1 + e
  at = lambda k: jax.lax.slice_in_dim(xp, k, k + m, axis=axis)
  even, odd = 0.25 * at(0) + 0.75 * at(1), 0.75 * at(1) + 0.25 * at(2)
  y = jnp.stack([even, odd], axis=axis + 1)
  y = y.reshape(*x.shape[:axis], 2 * m, *x.shape[axis + 1:])
  return jax.lax.slice_in_dim(y, e, 2 * m - e, axis=axis) if e else y


def upsample2d(x: jax.Array, border: bool = False) -> jax.Array:
  """(B, H, W, C) -> (B, 2H, 2W, C): the official upsample2d, i.e.
  upfirdn2d(x, up=2, pad=(2, 1), gain=4), in its polyphase form (half the
  work and on XLA:CPU half the time of filtering the zero-inserted map):
  per axis y[2i] = (x[i-1] + 3 x[i]) / 4, y[2i+1] = (3 x[i] + x[i+1]) / 4,
  x zero outside. Inside, bilinear interpolation's weights; at the border
  the missing neighbour is 0 (bilinear resize would clamp).

  `border`: one more output a side, (B, 2H + 2, 2W + 2, C), i.e.
  upfirdn2d(x, up=2, pad=(3, 2), gain=4): what the official up-conv
  (conv2d_resample, up=2) convolves 'VALID' with its 3x3 kernel."""
  e = int(border)
  return _upsample_axis(_upsample_axis(x, 1, e), 2, e)


def downsample2d(x: jax.Array) -> jax.Array:
  """(B, H, W, C) -> (B, H/2, W/2, C): the official downsample2d (pad (1, 1),
  filter, keep every second sample)."""
  return upfirdn2d(x, down=2, pad=(1, 1))



def _conv(x: jax.Array, w: jax.Array, stride=(1, 1),
          padding: str = "SAME") -> jax.Array:
  """NHWC x HWIO convolution; a 1x1 one (toRGB, fromRGB, the critic's
  shortcut) as a matmul. (As a convolution, a 1x1 with one output channel
  vmapped over seeds with per-seed weights (train.num_seeds) and sharded
  over them failed to compile: XLA's SPMD partitioner split the kernel's
  grouped features but not the input's.)"""
  if w.shape[:2] == (1, 1) and stride == (1, 1):
    return jnp.einsum("bhwi,io->bhwo", x, w[0, 0])
  return jax.lax.conv_general_dilated(
      x, w, stride, padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))


def normalize_2nd_moment(x: jax.Array, eps: float = 1e-8) -> jax.Array:
  """x / sqrt(mean(x^2) + eps) over the last axis (pixel norm of z)."""
  return x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + eps)


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
  """A 'SAME' k x k convolution with equalised learning rate; with `down`,
  the official conv2d_resample(down=2): a 1x1 convolves the
  downsample2d output; a k x k (odd k) blurs the input padded by k // 2 + 1
  a side and convolves that with stride 2 ('VALID'), so each output sees the
  blurred full-resolution map under its k x k window."""
  features: int
  kernel: int = 3
  use_bias: bool = True
  down: bool = False
  dtype: Any = jnp.float32   # compute dtype (parameters stay float32)

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    x = x.astype(self.dtype)
    w = self.param("kernel", _std_normal(1.0),
                   (self.kernel, self.kernel, c, self.features))
    w = (w * (1.0 / math.sqrt(c * self.kernel ** 2))).astype(self.dtype)
    stride, padding = (1, 1), "SAME"
    if self.down and self.kernel == 1:
      x = downsample2d(x)
    elif self.down:
      p = self.kernel // 2 + 1
      x, stride, padding = upfirdn2d(x, pad=(p, p)), (2, 2), "VALID"
    y = _conv(x, w, stride, padding)
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros,
                         (self.features,)).astype(y.dtype)
    return y


def modulated_conv(x: jax.Array, weight: jax.Array, styles: jax.Array,
                   demodulate: bool = True, eps: float = 1e-8,
                   padding: str = "SAME") -> jax.Array:
  """StyleGAN2's modulated convolution (paper eq. 1-3), 'SAME' padding
  unless told.

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
  y = _conv(x * styles[:, None, None, :].astype(x.dtype),
            weight.astype(x.dtype), (1, 1), padding)
  if demodulate:
    # sum over (k, k, I) of (s_i w_ijk)^2 = sum_i s_i^2 sum_k w_ijk^2,
    # in float32 whatever x's dtype
    wsq = jnp.sum(jnp.square(weight.astype(jnp.float32)), axis=(0, 1))
    d = jax.lax.rsqrt(jnp.square(styles.astype(jnp.float32)) @ wsq + eps)
    y = y * d[:, None, None, :].astype(y.dtype)
  return y


class ModConv(nn.Module):
  """Modulated k x k convolution: the style of an affine map of w (bias
  init 1, so that s starts near 1), equalised weights, optional 2x FIR
  upsampling before (`up`), then noise (one scalar strength), bias and
  leaky ReLU (`activate`).
  toRGB is `ModConv(kernel=1, demodulate=False, noise=False, activate=False)`
  (whose style is also scaled by 1/sqrt(fan_in), as in the official code)."""
  features: int
  kernel: int = 3
  demodulate: bool = True
  up: bool = False
  noise: bool = True
  activate: bool = True
  dtype: Any = jnp.float32   # compute dtype (styles and demodulation: f32)

  @nn.compact
  def __call__(self, x, w):
    c = x.shape[-1]
    x = x.astype(self.dtype)
    if self.up:
      # the official transposed stride-2 conv + filter (pad 1, 1) as
      # upsample (one extra row/column a side) + 'VALID' conv: the same
      # operator (tested), but convolving the upsampled map: 4x the
      # multiply-adds of the official form (a transposed-conv form on
      # XLA is not measured here)
      x = upsample2d(x, border=True)
    styles = EqualDense(c, bias_init=1.0, name="affine")(w)   # (B, I)
    weight = self.param("kernel", _std_normal(1.0),
                        (self.kernel, self.kernel, c, self.features))
    gain = 1.0 / math.sqrt(c * self.kernel ** 2)
    if self.demodulate:
      weight = weight * gain  # demodulation removes the scale anyway
    else:
      styles = styles * gain
    y = modulated_conv(x, weight, styles, self.demodulate,
                       padding="VALID" if self.up else "SAME")
    if self.noise:
      noise = jax.random.normal(self.make_rng("noise"), (*y.shape[:3], 1),
                                y.dtype)
      strength = self.param("noise_strength", nn.initializers.zeros, ())
      y = y + noise * strength.astype(y.dtype)
    y = y + self.param("bias", nn.initializers.zeros,
                       (self.features,)).astype(y.dtype)
    return lrelu(y) if self.activate else y


class Generator(nn.Module):
  """z (B, z_dim), labels cond (B,) or None -> images (B, R, R, channels),
  linear output (no tanh, as in the paper). Class-conditional with
  `num_classes` > 0 (then cond is required).

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
  num_classes: int = 0      # > 0: class-conditional (labels as cond)
  # The synthesis convolutions' compute dtype (bfloat16: mixed precision).
  # Parameters, the mapping network, styles, demodulation and the summed
  # image stay float32.
  dtype: Any = jnp.float32

  def setup(self):
    if self.num_classes:
      self.embed = EqualDense(self.w_dim, name="embed")
    self.mapping_net = [EqualDense(self.w_dim, lr_mul=self.mapping_lr_mul,
                                   name=f"map{i}")
                        for i in range(self.mapping_layers)]
    self.w_avg = self.variable("tracked", "w_avg",
                               lambda: jnp.zeros((self.w_dim,), jnp.float32))
    self.const = self.param("const", nn.initializers.normal(1.0),
                            (4, 4, self.width_at(4)))
    res = [4 * 2 ** i for i in range(self.num_blocks)]
    self.convs = [[ModConv(self.width_at(r), up=(j == 0 and r > 4),
                           dtype=self.dtype, name=f"b{r}_conv{j}")
                   for j in ((1,) if r == 4 else (0, 1))] for r in res]
    self.to_rgbs = [ModConv(self.channels, kernel=1, demodulate=False,
                            noise=False, activate=False, dtype=self.dtype,
                            name=f"b{r}_torgb")
                    for r in res]

  @property
  def num_blocks(self) -> int:
    return int(round(math.log2(self.resolution))) - 1

  @property
  def num_ws(self) -> int:
    return num_ws(self.resolution)

  def width_at(self, r: int) -> int:
    return widths(self.resolution, self.width, self.max_width)[r]

  def _w(self, z, cond=None):
    x = normalize_2nd_moment(z.astype(jnp.float32))
    if self.num_classes:
      if cond is None:
        raise ValueError("a conditional generator needs labels (cond)")
      y = self.embed(jax.nn.one_hot(cond, self.num_classes))
      x = jnp.concatenate([x, normalize_2nd_moment(y)], axis=-1)
    for layer in self.mapping_net:
      x = lrelu(layer(x))
    return x

  def mapping(self, z, cond=None, train: bool = False,
              truncation: float | None = None, level: int | None = None):
    """z (B, z_dim), labels cond (B,) or None -> ws (B, num_ws, w_dim). In
    training: updates w_avg (collection 'tracked') and, with probability
    `mixing` (one draw per batch, as the official code), takes the styles
    from a random layer on (the same for the batch) from a second z (drawn
    by the rng stream 'mixing'; same labels). Otherwise: truncation toward
    w_avg with psi `truncation` (default: the field).

    `level` (progressive growing): the cutoff is drawn among the layers
    that level's synthesis uses (`num_ws(levels[level])`), as StyleGAN's
    growing code draws it among the current layers; None: all."""
    w_avg = self.w_avg
    w = self._w(z, cond)
    ws = jnp.repeat(w[:, None], self.num_ws, axis=1)
    used = self.num_ws if level is None else num_ws(4 * 2 ** level)
    if train and not self.is_initializing():
      w_avg.value = w_avg.value + (1.0 - self.w_avg_beta) * (
          jnp.mean(jax.lax.stop_gradient(w), 0) - w_avg.value)
    if train and self.mixing > 0:
      k_z, k_p, k_c = jax.random.split(self.make_rng("mixing"), 3)
      w2 = self._w(jax.random.normal(k_z, z.shape, jnp.float32), cond)
      # the layer from which on the second styles apply (num_ws: none)
      cut = jax.random.randint(k_c, (), 1, used)
      cut = jnp.where(jax.random.uniform(k_p) < self.mixing, cut,
                      self.num_ws)
      later = jnp.arange(self.num_ws) >= cut
      ws = jnp.where(later[None, :, None], w2[:, None], ws)
    psi = self.truncation if truncation is None else truncation
    if not train and psi != 1.0:
      ws = w_avg.value + psi * (ws - w_avg.value)
    return ws

  def synthesis(self, ws, return_rgbs: bool = False,
                level: int | None = None, alpha: jax.Array | None = None):
    """ws (B, n, w_dim) -> image (B, R, R, channels); with `return_rgbs`
    also the list of each resolution's toRGB output (4x4, 8x8, ...; before
    the sum with the upsampled lower ones). n: num_ws, or at least the
    styles the level uses (`num_ws(levels[level])`; later ones are unused).

    Progressive growing (models/progressive.py): `level` k stops after
    block k, at 4 * 2^k px (None: the top). During the fade into k (`alpha`
    a scalar array) the output is lerp(upsample(img_{k-1}),
    upsample2d(img_{k-1}) + rgb_k, alpha): ProGAN's fade with the
    nearest-neighbour upsampling the real images get
    (`progressive.real_at`); at alpha 1 exactly the skip sum at level k.
    Every toRGB exists at any level, so the parameters never change."""
    top = self.num_blocks - 1 if level is None else level
    b = ws.shape[0]
    x = jnp.broadcast_to(self.const, (b, *self.const.shape))
    img, old, rgbs, i = None, None, [], 0
    for convs, to_rgb in zip(self.convs[:top + 1], self.to_rgbs):
      for conv in convs:
        x = conv(x, ws[:, i])
        i += 1
      rgb = to_rgb(x, ws[:, i]).astype(jnp.float32)
      rgbs.append(rgb)
      if img is not None:
        if len(rgbs) == top + 1 and alpha is not None:
          old = progressive.upsample(img)
        img = upsample2d(img) + rgb
      else:
        img = rgb
    if old is not None:
      img = progressive.lerp(old, img, alpha)
    return (img, rgbs) if return_rgbs else img

  def __call__(self, z, cond=None, train: bool = True,
               level: int | None = None, alpha: jax.Array | None = None):
    if alpha is not None and not level:
      raise ValueError("a fade (alpha) needs a level above 0")
    return self.synthesis(self.mapping(z, cond, train, level=level),
                          level=level, alpha=alpha)


class Discriminator(nn.Module):
  """images (B, R, R, C), labels cond (B,) or None -> logits (B,):
  StyleGAN2's residual critic. `per_example`: the minibatch std held fixed
  (gradient penalties, models/layers.py).

  With `num_classes` > 0 (stylegan2-ada-pytorch's conditional D): a mapping
  network of the label (one-hot -> equalised dense embedding -> 2nd-moment
  normalisation -> `mapping_layers` dense layers, lr multiplier 0.01, leaky
  ReLU) gives cmap (B, cmap_dim), cmap_dim the 4x4 width; the output layer
  gives cmap_dim features and the logit is sum(out * cmap) / sqrt(cmap_dim).

  `progressive` (models/progressive.py): level k (4 * 2^k px, below
  `resolution`) enters through a 1x1 fromRGB head of its own,
  `fromrgb{4 * 2^k}`, at the block of its resolution (the top level through
  `fromrgb`, as without growing). During the fade into level k the output
  of block 4 * 2^k is mixed with level k - 1's fromRGB of the
  average-pooled image: lerp(fromrgb(downsample(x)), block(x), alpha).
  """
  width: int = 512       # feature maps at 4x4 (halved per doubling)
  max_width: int = 512
  mbstd_group: int = 4
  num_classes: int = 0
  mapping_layers: int = 8   # the label's mapping (the official default)
  progressive: bool = False
  resolution: int = 0       # the top level's (progressive); 0: x's
  # The convolutions' compute dtype (bfloat16: mixed precision); the dense
  # layers after the last one, the label mapping and the logits: float32.
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, cond=None, train: bool = True,
               per_example: bool = False, level: int | None = None,
               alpha: jax.Array | None = None):
    del train
    if (level is not None or alpha is not None) and not self.progressive:
      raise ValueError("level/alpha need a progressive discriminator")
    size = self.resolution or x.shape[1]
    wd = widths(size, self.width, self.max_width)
    res = x.shape[1] if level is None else 4 * 2 ** level

    def from_rgb(img):
      r = img.shape[1]
      name = "fromrgb" if r == size else f"fromrgb{r}"
      return lrelu(EqualConv(wd[r], 1, dtype=self.dtype, name=name)(img))

    img = x.astype(jnp.float32)
    x, r = from_rgb(img), res
    while r > 4:
      conv = functools.partial(EqualConv, dtype=self.dtype)
      skip = conv(wd[r // 2], 1, use_bias=False, down=True,
                  name=f"b{r}_skip")(x)
      y = lrelu(conv(wd[r], 3, name=f"b{r}_conv0")(x))
      y = lrelu(conv(wd[r // 2], 3, down=True, name=f"b{r}_conv1")(y))
      x = (skip + y) * (1.0 / SQRT2)
      if r == res and alpha is not None:
        x = progressive.lerp(from_rgb(progressive.downsample(img)), x, alpha)
      r //= 2
    if self.progressive and self.is_initializing():
      for low in levels(size)[:-1]:  # every level's head exists
        from_rgb(progressive.resize(img, low))
    x = MinibatchStd(self.mbstd_group)(x, per_example)
    x = lrelu(EqualConv(wd[4], 3, dtype=self.dtype, name="epilogue_conv")(x))
    x = x.astype(jnp.float32).reshape(x.shape[0], -1)
    x = lrelu(EqualDense(wd[4], name="epilogue_fc")(x))
    if not self.num_classes:
      return EqualDense(1, name="out")(x)[:, 0]
    if cond is None:
      raise ValueError("a conditional discriminator needs labels (cond)")
    cmap_dim = wd[4]
    cmap = normalize_2nd_moment(EqualDense(cmap_dim, name="cmap_embed")(
        jax.nn.one_hot(cond, self.num_classes)))
    for i in range(self.mapping_layers):
      cmap = lrelu(EqualDense(cmap_dim, lr_mul=0.01, name=f"cmap{i}")(cmap))
    out = EqualDense(cmap_dim, name="out")(x)
    return jnp.sum(out * cmap, axis=-1) * (1.0 / math.sqrt(cmap_dim))
