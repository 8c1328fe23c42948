"""A PyTorch (eager) reference of gen_jax's StyleGAN2 step: the networks of
gen_jax/models/stylegan2.py layer for layer (NCHW instead of NHWC; the
modulated convolution as conv(x * s) * d, as there) and the update of
gen_jax's GAN trainer with configs/stylegan2.py (lazy R1 and path length
added to that step's objectives, not extra optimizer steps).

Resampling is the official upfirdn2d with the [1, 3, 3, 1] filter, as
the model's (`upfirdn2d` here: a depthwise conv2d, as stylegan2-ada-pytorch's
reference implementation of it).
"""

import math

import torch
from torch import nn

from bench.torch_reference import Step, with_networks


def upfirdn2d(x: torch.Tensor, up: int = 1, down: int = 1,
              pad: tuple[int, int] = (0, 0), gain: float = 1.0
              ) -> torch.Tensor:
  """NCHW upfirdn2d with outer([1,3,3,1], [1,3,3,1]) / 64 * gain: insert
  up - 1 zeros after each sample, zero-pad, filter, keep every down-th."""
  n, c, h, w = x.shape
  if up > 1:
    u = x.new_zeros(n, c, h * up, w * up)
    u[:, :, ::up, ::up] = x
    x = u
  x = nn.functional.pad(x, (pad[0], pad[1], pad[0], pad[1]))
  f = torch.tensor([1.0, 3.0, 3.0, 1.0], dtype=x.dtype)
  f = torch.outer(f, f)
  f = f / f.sum() * gain
  x = nn.functional.conv2d(x, f[None, None].expand(c, 1, 4, 4), groups=c)
  return x[:, :, ::down, ::down]


def sg2_upsample(x: torch.Tensor, border: bool = False) -> torch.Tensor:
  """upsample2d (gain 4, pad (2, 1)); `border`: one more output a side
  (pad (3, 2)), what the up-conv convolves without padding."""
  return upfirdn2d(x, up=2, pad=(3, 2) if border else (2, 1), gain=4.0)


def sg2_downsample(x: torch.Tensor) -> torch.Tensor:
  """downsample2d (pad (1, 1), every second sample)."""
  return upfirdn2d(x, down=2, pad=(1, 1))


def sg2_widths(resolution: int, base: int, max_width: int) -> dict[int, int]:
  """Feature maps at r px: min(4 base / r, max_width), r = 4 .. resolution."""
  return {4 * 2 ** k: max(1, min(base // 2 ** k, max_width))
          for k in range(int(round(math.log2(resolution))) - 1)}


def _lrelu(x: torch.Tensor) -> torch.Tensor:
  return nn.functional.leaky_relu(x, 0.2) * math.sqrt(2.0)


class EqualLinear(nn.Module):
  """x (W lr_mul / sqrt(fan_in))^T + b lr_mul, W stored N(0, 1) / lr_mul;
  `bias_init` the effective initial bias."""

  def __init__(self, cin: int, cout: int, lr_mul: float = 1.0,
               bias_init: float = 0.0):
    super().__init__()
    self.weight = nn.Parameter(torch.randn(cout, cin) / lr_mul)
    self.bias = nn.Parameter(torch.full((cout,), bias_init / lr_mul))
    self.lr_mul, self.gain = lr_mul, lr_mul / math.sqrt(cin)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return nn.functional.linear(x, self.weight * self.gain,
                                self.bias * self.lr_mul)


class EqualConv(nn.Module):
  """A 'same' k x k convolution with equalised learning rate; `down`: the
  input blurred with padding k // 2 + 1, then convolved with stride 2."""

  def __init__(self, cin: int, cout: int, kernel: int, bias: bool = True,
               down: bool = False):
    super().__init__()
    self.weight = nn.Parameter(torch.randn(cout, cin, kernel, kernel))
    self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
    self.gain = 1.0 / math.sqrt(cin * kernel ** 2)
    self.down = down

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    k = self.weight.shape[-1]
    if self.down:
      x = upfirdn2d(x, pad=(k // 2 + 1, k // 2 + 1))
      return nn.functional.conv2d(x, self.weight * self.gain, self.bias,
                                  stride=2)
    return nn.functional.conv2d(x, self.weight * self.gain, self.bias,
                                padding=k // 2)


class ModConv(nn.Module):
  """gen_jax's ModConv: [up ->] conv(x * s) * d (demodulation d) [-> +
  noise * a scalar strength] -> + bias [-> leaky ReLU]; the style s an
  affine map of w (bias 1). toRGB: kernel 1, no demodulation (s scaled by
  1/sqrt(fan_in) instead), no noise, no activation."""

  def __init__(self, cin: int, cout: int, w_dim: int, kernel: int = 3,
               demodulate: bool = True, up: bool = False,
               noise: bool = True, activate: bool = True):
    super().__init__()
    self.affine = EqualLinear(w_dim, cin, bias_init=1.0)
    self.weight = nn.Parameter(torch.randn(cout, cin, kernel, kernel))
    self.noise_strength = nn.Parameter(torch.zeros([])) if noise else None
    self.bias = nn.Parameter(torch.zeros(cout))
    self.demodulate, self.up, self.activate = demodulate, up, activate
    self.gain = 1.0 / math.sqrt(cin * kernel ** 2)

  def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    if self.up:
      x = sg2_upsample(x, border=True)
    s, weight = self.affine(w), self.weight
    if self.demodulate:
      weight = weight * self.gain
    else:
      s = s * self.gain
    y = nn.functional.conv2d(x * s[:, :, None, None], weight,
                             padding=0 if self.up else weight.shape[-1] // 2)
    if self.demodulate:
      d = torch.rsqrt(s.square() @ weight.square().sum((2, 3)).T + 1e-8)
      y = y * d[:, :, None, None]
    if self.noise_strength is not None:
      b, _, h, wd = y.shape
      y = y + torch.randn(b, 1, h, wd) * self.noise_strength
    y = y + self.bias[None, :, None, None]
    return _lrelu(y) if self.activate else y


class StyleGAN2Generator(nn.Module):
  """z (B, z_dim) -> images (B, C, R, R): mapping (pixel norm, equalised
  layers at lr_mul, w_avg, style mixing drawn once per batch) and the skip
  synthesis network of gen_jax's stylegan2.Generator."""

  def __init__(self, resolution: int, channels: int, z_dim: int, w_dim: int,
               mapping_layers: int, width: int, max_width: int,
               mixing: float = 0.9, mapping_lr_mul: float = 0.01,
               w_avg_beta: float = 0.995):
    super().__init__()
    wd = sg2_widths(resolution, width, max_width)
    res = sorted(wd)
    self.mapping_net = nn.ModuleList(
        EqualLinear(z_dim if i == 0 else w_dim, w_dim, mapping_lr_mul)
        for i in range(mapping_layers))
    self.register_buffer("w_avg", torch.zeros(w_dim))
    self.const = nn.Parameter(torch.randn(wd[4], 4, 4))
    self.convs = nn.ModuleList(
        nn.ModuleList([ModConv(wd[4], wd[4], w_dim)] if r == 4 else
                      [ModConv(wd[r // 2], wd[r], w_dim, up=True),
                       ModConv(wd[r], wd[r], w_dim)]) for r in res)
    self.to_rgbs = nn.ModuleList(
        ModConv(wd[r], channels, w_dim, 1, demodulate=False, noise=False,
                activate=False) for r in res)
    self.num_ws = 2 * len(res)
    self.mixing, self.w_avg_beta = mixing, w_avg_beta

  def _w(self, z: torch.Tensor) -> torch.Tensor:
    x = z * torch.rsqrt(z.square().mean(1, keepdim=True) + 1e-8)
    for layer in self.mapping_net:
      x = _lrelu(layer(x))
    return x

  def mapping(self, z: torch.Tensor, track: bool = True) -> torch.Tensor:
    """Training-mode mapping: ws (B, num_ws, w_dim); `track` moves w_avg."""
    w = self._w(z)
    ws = w[:, None].expand(-1, self.num_ws, -1)
    if track:
      with torch.no_grad():
        self.w_avg.lerp_(w.mean(0), 1.0 - self.w_avg_beta)
    if self.mixing > 0:
      w2 = self._w(torch.randn_like(z))
      cut = int(torch.randint(1, self.num_ws, ()))
      cut = cut if float(torch.rand(())) < self.mixing else self.num_ws
      later = torch.arange(self.num_ws) >= cut
      ws = torch.where(later[None, :, None], w2[:, None], ws)
    return ws

  def synthesis(self, ws: torch.Tensor) -> torch.Tensor:
    x = self.const[None].expand(ws.shape[0], -1, -1, -1)
    img, i = None, 0
    for convs, to_rgb in zip(self.convs, self.to_rgbs):
      for conv in convs:
        x = conv(x, ws[:, i])
        i += 1
      rgb = to_rgb(x, ws[:, i])
      img = rgb if img is None else sg2_upsample(img) + rgb
    return img

  def forward(self, z: torch.Tensor, track: bool = True) -> torch.Tensor:
    return self.synthesis(self.mapping(z, track))


def minibatch_std(x: torch.Tensor, group: int,
                  per_example: bool = False) -> torch.Tensor:
  """gen_jax's MinibatchStd on NCHW: contiguous groups of min(group, N);
  `per_example` holds the statistic fixed (the R1 pass)."""
  n, c, h, w = x.shape
  g = min(group, n)
  std = torch.sqrt(x.view(n // g, g, c, h, w).var(1, unbiased=False) + 1e-8)
  if per_example:
    std = std.detach()
  each = std.flatten(1).mean(1).repeat_interleave(g)
  return torch.cat([x, each.view(n, 1, 1, 1).expand(n, 1, h, w)], 1)


class StyleGAN2Discriminator(nn.Module):
  """images (B, C, R, R) -> logits (B,): gen_jax's residual critic."""

  def __init__(self, resolution: int, channels: int, width: int,
               max_width: int, mbstd_group: int = 4):
    super().__init__()
    wd = sg2_widths(resolution, width, max_width)
    res = sorted(wd, reverse=True)[:-1]       # blocks at R, R/2, ..., 8
    self.fromrgb = EqualConv(channels, wd[resolution], 1)
    self.blocks = nn.ModuleList(nn.ModuleDict({
        "skip": EqualConv(wd[r], wd[r // 2], 1, bias=False),
        "conv0": EqualConv(wd[r], wd[r], 3),
        "conv1": EqualConv(wd[r], wd[r // 2], 3, down=True)}) for r in res)
    self.epilogue_conv = EqualConv(wd[4] + 1, wd[4], 3)
    self.epilogue_fc = EqualLinear(16 * wd[4], wd[4])
    self.out = EqualLinear(wd[4], 1)
    self.mbstd_group = mbstd_group

  def forward(self, x: torch.Tensor, per_example: bool = False
              ) -> torch.Tensor:
    x = _lrelu(self.fromrgb(x))
    for b in self.blocks:
      y = _lrelu(b["conv1"](_lrelu(b["conv0"](x))))
      x = (b["skip"](sg2_downsample(x)) + y) / math.sqrt(2.0)
    x = minibatch_std(x, self.mbstd_group, per_example)
    x = _lrelu(self.epilogue_conv(x))
    # NHWC flattening order, as gen_jax's reshape
    x = _lrelu(self.epilogue_fc(x.permute(0, 2, 3, 1).flatten(1)))
    return self.out(x)[:, 0]


def stylegan2_step(resolution: int, channels: int, z_dim: int = 128,
                   w_dim: int = 128, mapping_layers: int = 8,
                   width: int = 64, max_width: int = 64,
                   mixing: float = 0.9, mbstd_group: int = 4,
                   batch: int = 32, r1_gamma: float = 0.0016,
                   r1_every: int = 16, pl_weight: float = 2.0,
                   pl_every: int = 4, pl_batch_shrink: int = 2,
                   pl_decay: float = 0.01, lr: float = 0.0025,
                   betas: tuple[float, float] = (0.0, 0.99),
                   ema_decay: float = 0.5 ** (32 / 10_000),
                   mapping_lr_mul: float = 0.01,
                   w_avg_beta: float = 0.995) -> Step:
  """gen_jax's StyleGAN2 update (configs/stylegan2.py; defaults: its
  digits config): a critic update with the non-saturating loss, plus at
  every `r1_every`-th step R1 on the reals with weight gamma * r1_every in
  the same objective; a generator update, plus at every `pl_every`-th step
  the path-length penalty on B / pl_batch_shrink examples with weight
  pl_weight * pl_every (`pl_weight` 0: off); the EMA of G. Steps are
  counted from 0 by the step itself, as gen_jax's state.step: time a whole
  number of cycles of max(r1_every, pl_every) steps. `real` (B, C, H, W).
  """
  g = StyleGAN2Generator(resolution, channels, z_dim, w_dim, mapping_layers,
                         width, max_width, mixing, mapping_lr_mul, w_avg_beta)
  d = StyleGAN2Discriminator(resolution, channels, width, max_width,
                             mbstd_group)
  g_opt = torch.optim.Adam(g.parameters(), lr=lr, betas=betas)
  d_opt = torch.optim.Adam(d.parameters(), lr=lr, betas=betas)
  ema = [p.detach().clone() for p in g.parameters()]
  softplus = nn.functional.softplus
  state = {"step": 0, "pl_mean": torch.zeros(())}

  def step(real: torch.Tensor) -> None:
    i, x = state["step"], real
    with torch.no_grad():
      fake = g(torch.randn(batch, z_dim), track=False)
    d.zero_grad()
    loss = softplus(-d(x)).mean() + softplus(d(fake)).mean()
    if r1_gamma and i % r1_every == 0:
      x = x.detach().requires_grad_(True)
      grad, = torch.autograd.grad(d(x, per_example=True).sum(), x,
                                  create_graph=True)
      r1 = 0.5 * grad.square().flatten(1).sum(1).mean()
      loss = loss + r1_gamma * r1_every * r1
    loss.backward()
    d_opt.step()

    g.zero_grad()
    ws = g.mapping(torch.randn(batch, z_dim))
    loss = softplus(-d(g.synthesis(ws))).mean()
    if pl_weight and i % pl_every == 0:
      w = ws[:max(1, batch // pl_batch_shrink)]
      img = g.synthesis(w)
      y = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
      grad, = torch.autograd.grad((img * y).sum(), w, create_graph=True)
      lengths = grad.square().sum(2).mean(1).sqrt()
      pl_mean = state["pl_mean"]
      pl_mean = pl_mean + pl_decay * (lengths.detach().mean() - pl_mean)
      state["pl_mean"] = pl_mean
      loss = loss + pl_weight * pl_every * (lengths - pl_mean).square().mean()
    loss.backward()
    g_opt.step()
    with torch.no_grad():
      torch._foreach_lerp_(ema, list(g.parameters()), 1.0 - ema_decay)
    state["step"] = i + 1
  return with_networks(step, generator=g, discriminator=d)
