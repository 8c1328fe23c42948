"""PyTorch (eager, CPU) references of gen_jax's DCGAN, WGAN-GP and VAE steps.

The architectures mirror gen_jax.models (dcgan.py, vae.py) layer for layer:
same widths, kernels, strides, paddings, biases, normalisations and
activations, NCHW instead of NHWC. The generator's first layer is a Linear on
z, as in gen_jax (the PyTorch example's 4x4 ConvTranspose2d of a 1x1 input is
the same map). The updates follow the PyTorch DCGAN example
(github.com/pytorch/examples/blob/main/dcgan/main.py) and Gulrajani et al.
2017, Algorithm 1, with logits + BCEWithLogits instead of Sigmoid + BCELoss
(same function).
"""

import contextlib
import math
from collections.abc import Callable

import torch
from torch import nn


def num_doublings(resolution: int) -> tuple[int, int]:
  base = 7 if resolution == 28 else 4
  return base, int(round(math.log2(resolution // base)))


class PixelLayerNorm(nn.Module):
  """flax nn.LayerNorm on NHWC: normalises each pixel over its channels."""

  def __init__(self, channels: int):
    super().__init__()
    self.norm = nn.LayerNorm(channels)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class Generator(nn.Module):
  def __init__(self, resolution: int, channels: int, width: int = 64,
               noise_dim: int = 100):
    super().__init__()
    self.base, n = num_doublings(resolution)
    self.width = width * 2 ** (n - 1)
    self.project = nn.Linear(noise_dim, self.base ** 2 * self.width, bias=False)
    w = self.width
    layers: list[nn.Module] = [nn.BatchNorm2d(w), nn.ReLU(True)]
    for _ in range(n - 1):
      layers += [nn.ConvTranspose2d(w, w // 2, 4, 2, 1, bias=False),
                 nn.BatchNorm2d(w // 2), nn.ReLU(True)]
      w //= 2
    layers += [nn.ConvTranspose2d(w, channels, 4, 2, 1), nn.Tanh()]
    self.main = nn.Sequential(*layers)

  def forward(self, z: torch.Tensor) -> torch.Tensor:
    x = self.project(z).view(z.shape[0], self.width, self.base, self.base)
    return self.main(x)


class Discriminator(nn.Module):
  def __init__(self, resolution: int, channels: int, width: int = 64,
               norm: str = "batch"):
    super().__init__()
    _, n = num_doublings(resolution)
    layers: list[nn.Module] = []
    c, w, size = channels, width, resolution
    for i in range(n):
      layers.append(nn.Conv2d(c, w, 4, 2, 1, bias=False))
      if i > 0 and norm == "batch":
        layers.append(nn.BatchNorm2d(w))
      elif i > 0 and norm == "layer":
        layers.append(PixelLayerNorm(w))
      layers.append(nn.LeakyReLU(0.2, inplace=True))
      c, w, size = w, w * 2, size // 2
    self.main = nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * size ** 2, 1))

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.main(x).view(-1)


def _init(module: nn.Module) -> None:
  for m in module.modules():
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
      nn.init.normal_(m.weight, 0.0, 0.02)


Step = Callable[[torch.Tensor], None]


def _autocast(device: str, dtype: torch.dtype | None):
  """bfloat16 autocast (weights float32) when `dtype` is given."""
  if dtype is None:
    return contextlib.nullcontext()
  return torch.autocast(device_type=device.split(":")[0], dtype=dtype)


def dcgan_step(resolution: int, channels: int, batch: int = 64,
               noise_dim: int = 100, device: str = "cpu",
               dtype: torch.dtype | None = None) -> Step:
  """One iteration of the PyTorch DCGAN example: a D then a G Adam update.
  `device` and `dtype` (bfloat16 autocast) serve the GPU benchmark."""
  g = Generator(resolution, channels, noise_dim=noise_dim)
  d = Discriminator(resolution, channels)
  _init(g), _init(d)
  g, d = g.to(device), d.to(device)
  opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
  opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
  bce = nn.BCEWithLogitsLoss()
  ones = torch.ones(batch, device=device)
  zeros = torch.zeros(batch, device=device)

  def step(real: torch.Tensor) -> None:
    with _autocast(device, dtype):
      d.zero_grad()
      bce(d(real).float(), ones).backward()
      fake = g(torch.randn(batch, noise_dim, device=device))
      bce(d(fake.detach()).float(), zeros).backward()
      opt_d.step()
      g.zero_grad()
      bce(d(fake).float(), ones).backward()  # non-saturating, reusing `fake`
      opt_g.step()
  return step


def wgan_gp_step(resolution: int, channels: int, batch: int = 64,
                 noise_dim: int = 100, n_critic: int = 5,
                 weight: float = 10.0, device: str = "cpu",
                 dtype: torch.dtype | None = None) -> Step:
  """Gulrajani et al. 2017, Algorithm 1: n_critic critic updates with the
  gradient penalty (layer-normalised critic), then one generator update.
  `real` is (n_critic, B, C, H, W)."""
  g = Generator(resolution, channels, noise_dim=noise_dim)
  d = Discriminator(resolution, channels, norm="layer")
  _init(g), _init(d)
  g, d = g.to(device), d.to(device)
  opt_g = torch.optim.Adam(g.parameters(), lr=1e-4, betas=(0.0, 0.9))
  opt_d = torch.optim.Adam(d.parameters(), lr=1e-4, betas=(0.0, 0.9))

  def step(real: torch.Tensor) -> None:
    with _autocast(device, dtype):
      for x in real:
        with torch.no_grad():
          fake = g(torch.randn(batch, noise_dim, device=device))
        d.zero_grad()
        eps = torch.rand(batch, 1, 1, 1, device=device)
        x_hat = (eps * x + (1 - eps) * fake).requires_grad_(True)
        grad, = torch.autograd.grad(d(x_hat).sum(), x_hat, create_graph=True)
        norm = torch.sqrt(grad.float().flatten(1).pow(2).sum(1) + 1e-12)
        loss = (d(fake).float().mean() - d(x).float().mean()
                + weight * (norm - 1).pow(2).mean())
        loss.backward()
        opt_d.step()
      g.zero_grad()
      (-d(g(torch.randn(batch, noise_dim, device=device))).float().mean()
       ).backward()
      opt_g.step()
  return step


def vae_step(input_dim: int, batch: int = 128, hidden: int = 500,
             latent: int = 20) -> Step:
  """Kingma & Welling 2014 MLP VAE (784-500-20), Bernoulli likelihood,
  analytic KL, Adam 1e-3: one update on `real` (B, input_dim) in [0, 1]."""
  enc = nn.Sequential(nn.Linear(input_dim, hidden), nn.ReLU())
  mu_head, ls_head = nn.Linear(hidden, latent), nn.Linear(hidden, latent)
  dec = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(),
                      nn.Linear(hidden, input_dim))
  modules = nn.ModuleList([enc, mu_head, ls_head, dec])
  opt = torch.optim.Adam(modules.parameters(), lr=1e-3)

  def step(real: torch.Tensor) -> None:
    opt.zero_grad()
    h = enc(real)
    mu, log_sigma = mu_head(h), ls_head(h)
    z = mu + log_sigma.exp() * torch.randn_like(mu)
    nll = nn.functional.binary_cross_entropy_with_logits(
        dec(z), real, reduction="none").sum(1)
    kl = 0.5 * (mu.pow(2) + (2 * log_sigma).exp() - 1 - 2 * log_sigma).sum(1)
    (nll + kl).mean().backward()
    opt.step()
  return step


# -- SNGAN and BigGAN, mirroring gen_jax/models/resnet.py ---------------------

def _sn(layer: nn.Module, on: bool) -> nn.Module:
  """One power iteration per forward pass, as gen_jax's SpectralNorm."""
  return nn.utils.parametrizations.spectral_norm(layer) if on else layer


class LinearCondBatchNorm(nn.Module):
  """BigGAN's conditional batch norm: batch-normalised x * (1 + W_g c) +
  W_b c, linear in the block's conditioning vector c (B, cond_dim)."""

  def __init__(self, channels: int, cond_dim: int, sn: bool):
    super().__init__()
    self.bn = nn.BatchNorm2d(channels, affine=False)
    self.gain = _sn(nn.Linear(cond_dim, channels, bias=False), sn)
    self.bias = _sn(nn.Linear(cond_dim, channels, bias=False), sn)

  def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return (self.bn(x) * (1 + self.gain(c))[:, :, None, None]
            + self.bias(c)[:, :, None, None])


class ResGBlock(nn.Module):
  """BN -> ReLU -> up -> conv3 -> BN -> ReLU -> conv3, + up -> conv1. The
  batch norms are plain, or with `cond_dim` > 0 BigGAN's linear
  conditional ones; `sn`: spectral norm on the convolutions."""

  def __init__(self, cin: int, cout: int, cond_dim: int = 0,
               sn: bool = False):
    super().__init__()
    bn = ((lambda c: LinearCondBatchNorm(c, cond_dim, sn)) if cond_dim
          else nn.BatchNorm2d)
    self.bn0, self.bn1 = bn(cin), bn(cout)
    self.conv0 = _sn(nn.Conv2d(cin, cout, 3, padding=1), sn)
    self.conv1 = _sn(nn.Conv2d(cout, cout, 3, padding=1), sn)
    self.shortcut = _sn(nn.Conv2d(cin, cout, 1), sn)

  def forward(self, x: torch.Tensor,
              c: torch.Tensor | None = None) -> torch.Tensor:
    norm = lambda bn, v: bn(v) if c is None else bn(v, c)
    up = lambda v: nn.functional.interpolate(v, scale_factor=2.0)
    h = self.conv0(up(torch.relu(norm(self.bn0, x))))
    h = self.conv1(torch.relu(norm(self.bn1, h)))
    return h + self.shortcut(up(x))


class ResDBlock(nn.Module):
  """[ReLU] -> conv3 -> ReLU -> conv3 -> [pool], + shortcut (SNGAN's
  optimized first block pools before its 1x1 conv)."""

  def __init__(self, cin: int, cout: int, down: bool, first: bool):
    super().__init__()
    self.down, self.first = down, first
    self.conv0 = _sn(nn.Conv2d(cin, cout, 3, padding=1), True)
    self.conv1 = _sn(nn.Conv2d(cout, cout, 3, padding=1), True)
    self.shortcut = (_sn(nn.Conv2d(cin, cout, 1), True)
                     if first or down or cin != cout else None)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    pool = lambda v: nn.functional.avg_pool2d(v, 2) if self.down else v
    h = x if self.first else torch.relu(x)
    h = pool(self.conv1(torch.relu(self.conv0(h))))
    if self.first:
      return h + self.shortcut(pool(x))
    s = self.shortcut(x) if self.shortcut is not None else x
    return h + pool(s)


class SelfAttention(nn.Module):
  """SAGAN's block as in gen_jax: x + gamma * conv1x1(softmax(theta
  phi^T) g), keys and values max-pooled 2x2, gamma starting at 0."""

  def __init__(self, channels: int, sn: bool):
    super().__init__()
    conv = lambda cin, cout: _sn(nn.Conv2d(cin, cout, 1), sn)
    c = channels
    self.theta, self.phi = conv(c, c // 8), conv(c, c // 8)
    self.g, self.out = conv(c, c // 2), conv(c // 2, c)
    self.gamma = nn.Parameter(torch.zeros(()))

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    b, c, h, w = x.shape
    pool = lambda v: nn.functional.max_pool2d(v, 2).flatten(2)
    theta = self.theta(x).flatten(2)                     # (B, C/8, HW)
    beta = torch.softmax(theta.transpose(1, 2) @ pool(self.phi(x)), -1)
    o = (pool(self.g(x)) @ beta.transpose(1, 2)).view(b, c // 2, h, w)
    return x + self.gamma * self.out(o)


class ResNetGenerator(nn.Module):
  """z (B, noise_dim), labels y (B,) or None -> (B, C, R, R) in [-1, 1].

  As gen_jax's resnet.Generator: widths `width * mult[k]`, `sn` on every
  layer (BigGAN), `shared_dim` > 0 a shared class embedding and
  `hierarchical` z split into blocks + 1 chunks (the first, the dense
  layer's, takes the remainder), both feeding the linear conditional batch
  norms; `attention` (a resolution) a self-attention block after the
  generator block of that output resolution."""

  def __init__(self, resolution: int, channels: int, width: int,
               noise_dim: int = 128, mult: tuple[int, ...] = (),
               sn: bool = False, num_classes: int = 0, shared_dim: int = 0,
               hierarchical: bool = False, attention: int = 0):
    super().__init__()
    n = int(round(math.log2(resolution // 4)))
    if num_classes and not shared_dim:
      raise NotImplementedError("per-class batch-norm tables (cGAN-PD)")
    widths = [width * k for k in (mult or (1,) * (n + 1))]
    each = noise_dim // (n + 1) if hierarchical else 0
    self.chunks = [noise_dim - n * each] + [each] * n
    self.hierarchical, self.width = hierarchical, widths[0]
    self.shared = (nn.Embedding(num_classes, shared_dim) if num_classes
                   else None)
    cond_dim = (shared_dim if num_classes else 0) + each
    self.dense = _sn(nn.Linear(self.chunks[0], 16 * widths[0]), sn)
    self.blocks = nn.ModuleList(ResGBlock(widths[i], widths[i + 1],
                                          cond_dim, sn) for i in range(n))
    res = [8 * 2 ** i for i in range(n)]
    self.attention_after = res.index(attention) if attention else None
    self.attention = (SelfAttention(widths[res.index(attention) + 1], sn)
                      if attention else None)
    self.bn = nn.BatchNorm2d(widths[-1])
    self.out = _sn(nn.Conv2d(widths[-1], channels, 3, padding=1), sn)

  def forward(self, z: torch.Tensor,
              y: torch.Tensor | None = None) -> torch.Tensor:
    zs = (list(torch.split(z, self.chunks, 1)) if self.hierarchical
          else [z] + [None] * len(self.blocks))
    shared = self.shared(y) if self.shared is not None else None
    conds = [None if shared is None and zi is None else
             torch.cat([v for v in (shared, zi) if v is not None], 1)
             for zi in zs[1:]]
    x = self.dense(zs[0]).view(z.shape[0], 4, 4, self.width)
    x = x.permute(0, 3, 1, 2)
    for i, block in enumerate(self.blocks):
      x = block(x, conds[i])
      if i == self.attention_after:
        x = self.attention(x)
    return torch.tanh(self.out(torch.relu(self.bn(x))))


class ResNetDiscriminator(nn.Module):
  """images (B, C, R, R), labels y (B,) or None -> logits (B,): gen_jax's
  resnet.Discriminator with spectral norm; block i of width `width *
  mult[i]`, pooling when `down[i]`; `attention` after the first block whose
  output has that resolution (`resolution`: the input's); with
  `num_classes`, the projection <embed(y), phi(x)>."""

  def __init__(self, channels: int, width: int, down: tuple[bool, ...],
               mult: tuple[int, ...] = (), num_classes: int = 0,
               attention: int = 0, resolution: int = 0):
    super().__init__()
    widths = [width * k for k in (mult or (1,) * len(down))]
    ins = [channels] + widths[:-1]
    self.blocks = nn.ModuleList(ResDBlock(ins[i], widths[i], d, i == 0)
                                for i, d in enumerate(down))
    sizes = [resolution // 2 ** sum(down[:i + 1]) for i in range(len(down))]
    self.attention_after = sizes.index(attention) if attention else None
    self.attention = (SelfAttention(widths[self.attention_after], True)
                      if attention else None)
    self.out = _sn(nn.Linear(widths[-1], 1), True)
    self.projection = (_sn(nn.Embedding(num_classes, widths[-1]), True)
                       if num_classes else None)

  def forward(self, x: torch.Tensor,
              y: torch.Tensor | None = None) -> torch.Tensor:
    for i, block in enumerate(self.blocks):
      x = block(x)
      if i == self.attention_after:
        x = self.attention(x)
    phi = torch.relu(x).sum(dim=(2, 3))
    logits = self.out(phi)[:, 0]
    if self.projection is not None:
      logits = logits + (self.projection(y) * phi).sum(1)
    return logits


def _kernels(module: nn.Module) -> list[torch.Tensor]:
  """The stored weights of every convolution and linear layer (before
  spectral normalisation): what gen_jax calls `kernel`."""
  out = []
  for m in module.modules():
    if isinstance(m, (nn.Conv2d, nn.Linear)):
      out.append(m.parametrizations.weight.original
                 if nn.utils.parametrize.is_parametrized(m, "weight")
                 else m.weight)
  return out


def orthogonal(module: nn.Module) -> torch.Tensor:
  """BigGAN's orthogonal regularisation as gen_jax's objectives.orthogonal:
  sum over kernels W of ||W W^T * (1 - I)||_F^2 (W (out, fan_in))."""
  total = torch.zeros(())
  for w in _kernels(module):
    gram = (w := w.flatten(1)) @ w.T
    total = total + gram.pow(2).sum() - gram.diagonal().pow(2).sum()
  return total


def with_networks(step: Step, **networks: nn.Module) -> Step:
  """`step`, carrying its networks (`step.networks`) for parameter counts."""
  step.networks = networks
  return step


def _hinge_gan_step(g: nn.Module, d: nn.Module, batch: int, noise_dim: int,
                    g_opt: torch.optim.Optimizer,
                    d_opt: torch.optim.Optimizer, num_classes: int = 0,
                    g_regularizer: Callable[[], torch.Tensor] | None = None,
                    ema_decay: float = 0.0) -> Step:
  """gen_jax's GAN update with the hinge loss: per critic batch one update
  on fresh fakes, then a generator update (plus `g_regularizer()`), then
  the generator's EMA. `real` (n_critic, B, C, H, W); `labels`
  (n_critic, B) when conditional, fake labels drawn uniformly."""
  ema = [p.detach().clone() for p in g.parameters()] if ema_decay else None
  fake_labels = lambda: (torch.randint(num_classes, (batch,)) if num_classes
                         else None)

  def step(real: torch.Tensor, labels: torch.Tensor | None = None) -> None:
    for i, x in enumerate(real):
      with torch.no_grad():
        y_fake = fake_labels()
        fake = g(torch.randn(batch, noise_dim), y_fake)
      d.zero_grad()
      y = None if labels is None else labels[i]
      (torch.relu(1 - d(x, y)).mean() + torch.relu(1 + d(fake, y_fake)).mean()
       ).backward()
      d_opt.step()
    g.zero_grad()
    y_fake = fake_labels()
    loss = -d(g(torch.randn(batch, noise_dim), y_fake), y_fake).mean()
    if g_regularizer is not None:
      loss = loss + g_regularizer()
    loss.backward()
    g_opt.step()
    if ema is not None:
      with torch.no_grad():
        torch._foreach_lerp_(ema, list(g.parameters()), 1.0 - ema_decay)
  return with_networks(step, generator=g, discriminator=d)


def sngan_step(resolution: int, channels: int, g_width: int, d_width: int,
               d_down: tuple[bool, ...], batch: int = 64,
               noise_dim: int = 128, n_critic: int = 5) -> Step:
  """SNGAN's update (configs/sngan.py): n_critic hinge-loss critic updates,
  each on fresh fakes, then a generator update; Adam 2e-4, betas (0, 0.9).
  `real` is (n_critic, B, C, H, W) (n_critic: its leading axis)."""
  del n_critic  # the batch's leading axis
  g = ResNetGenerator(resolution, channels, g_width, noise_dim)
  d = ResNetDiscriminator(channels, d_width, d_down)
  adam = lambda m: torch.optim.Adam(m.parameters(), lr=2e-4,
                                    betas=(0.0, 0.9))
  return _hinge_gan_step(g, d, batch, noise_dim, adam(g), adam(d))


def biggan_networks(resolution: int, channels: int, width: int,
                    d_down: tuple[bool, ...], num_classes: int = 10,
                    shared_dim: int = 128, noise_dim: int = 128,
                    d_mult: tuple[int, ...] = (), g_attention: int = 0,
                    d_attention: int = 0) -> tuple[nn.Module, nn.Module]:
  """configs/biggan.py's networks: spectral norm in G and D, a shared class
  embedding and hierarchical z into G's linear conditional batch norms, a
  projection critic (unconditional with `num_classes` 0: the batch norms
  see the z chunks alone)."""
  g = ResNetGenerator(resolution, channels, width, noise_dim, sn=True,
                      num_classes=num_classes, shared_dim=shared_dim,
                      hierarchical=True, attention=g_attention)
  d = ResNetDiscriminator(channels, width, d_down, d_mult, num_classes,
                          d_attention, resolution)
  return g, d


def biggan_step(resolution: int, channels: int, width: int,
                d_down: tuple[bool, ...], num_classes: int = 10,
                shared_dim: int = 128, noise_dim: int = 128,
                d_mult: tuple[int, ...] = (), batch: int = 50,
                g_attention: int = 0, d_attention: int = 0,
                orthogonal_weight: float = 1e-4,
                ema_decay: float = 0.9999) -> Step:
  """BigGAN's update as configs/biggan.py (`biggan_networks`): hinge loss,
  n_critic critic updates (the leading axis of `real`), Adam 2e-4, betas
  (0, 0.999) for both networks, orthogonal regularisation of G (weight
  `orthogonal_weight`) and an EMA of G after each generator update."""
  g, d = biggan_networks(resolution, channels, width, d_down, num_classes,
                         shared_dim, noise_dim, d_mult, g_attention,
                         d_attention)
  adam = lambda m: torch.optim.Adam(m.parameters(), lr=2e-4,
                                    betas=(0.0, 0.999))
  return _hinge_gan_step(
      g, d, batch, noise_dim, adam(g), adam(d), num_classes,
      lambda: orthogonal_weight * orthogonal(g), ema_decay)


# -- StyleGAN2, mirroring gen_jax/models/stylegan2.py -------------------------

def sg2_upsample(x: torch.Tensor) -> torch.Tensor:
  """The generator's 2x resampling (gen_jax: jax.image.resize 'bilinear',
  the same half-pixel, edge-clamped interpolation)."""
  return nn.functional.interpolate(x, scale_factor=2.0, mode="bilinear",
                                   align_corners=False)


def sg2_downsample(x: torch.Tensor) -> torch.Tensor:
  """The critic's 2x2 average pooling."""
  return nn.functional.avg_pool2d(x, 2)


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
  """A 'same' k x k convolution with equalised learning rate."""

  def __init__(self, cin: int, cout: int, kernel: int, bias: bool = True):
    super().__init__()
    self.weight = nn.Parameter(torch.randn(cout, cin, kernel, kernel))
    self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
    self.gain = 1.0 / math.sqrt(cin * kernel ** 2)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return nn.functional.conv2d(x, self.weight * self.gain, self.bias,
                                padding=self.weight.shape[-1] // 2)


class ModConv(nn.Module):
  """gen_jax's ModConv: [up ->] conv(x * s) * d (demodulation d) [-> +
  noise * per-channel strength] -> + bias [-> leaky ReLU]; the style s an
  affine map of w (bias 1). toRGB: kernel 1, no demodulation (s scaled by
  1/sqrt(fan_in) instead), no noise, no activation."""

  def __init__(self, cin: int, cout: int, w_dim: int, kernel: int = 3,
               demodulate: bool = True, up: bool = False,
               noise: bool = True, activate: bool = True):
    super().__init__()
    self.affine = EqualLinear(w_dim, cin, bias_init=1.0)
    self.weight = nn.Parameter(torch.randn(cout, cin, kernel, kernel))
    self.noise_strength = nn.Parameter(torch.zeros(cout)) if noise else None
    self.bias = nn.Parameter(torch.zeros(cout))
    self.demodulate, self.up, self.activate = demodulate, up, activate
    self.gain = 1.0 / math.sqrt(cin * kernel ** 2)

  def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    if self.up:
      x = sg2_upsample(x)
    s, weight = self.affine(w), self.weight
    if self.demodulate:
      weight = weight * self.gain
    else:
      s = s * self.gain
    y = nn.functional.conv2d(x * s[:, :, None, None], weight,
                             padding=weight.shape[-1] // 2)
    if self.demodulate:
      d = torch.rsqrt(s.square() @ weight.square().sum((2, 3)).T + 1e-8)
      y = y * d[:, :, None, None]
    if self.noise_strength is not None:
      b, _, h, wd = y.shape
      y = y + (torch.randn(b, 1, h, wd)
               * self.noise_strength[None, :, None, None])
    y = y + self.bias[None, :, None, None]
    return _lrelu(y) if self.activate else y


class StyleGAN2Generator(nn.Module):
  """z (B, z_dim) -> images (B, C, R, R): mapping (pixel norm, equalised
  layers at lr_mul, w_avg, per-example style mixing) and the skip
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
      n = z.shape[0]
      cut = torch.randint(1, self.num_ws, (n,))
      cut = torch.where(torch.rand(n) < self.mixing, cut, self.num_ws)
      later = torch.arange(self.num_ws)[None, :] >= cut[:, None]
      ws = torch.where(later[..., None], w2[:, None], ws)
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
        "conv1": EqualConv(wd[r], wd[r // 2], 3)}) for r in res)
    self.epilogue_conv = EqualConv(wd[4] + 1, wd[4], 3)
    self.epilogue_fc = EqualLinear(16 * wd[4], wd[4])
    self.out = EqualLinear(wd[4], 1)
    self.mbstd_group = mbstd_group

  def forward(self, x: torch.Tensor, per_example: bool = False
              ) -> torch.Tensor:
    x = _lrelu(self.fromrgb(x))
    for b in self.blocks:
      y = _lrelu(b["conv1"](sg2_downsample(_lrelu(b["conv0"](x)))))
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
                   ema_decay: float = 0.5 ** (32 / 10_000)) -> Step:
  """gen_jax's StyleGAN2 update (configs/stylegan2.py; defaults: its
  digits config): a critic update with the non-saturating loss, plus at
  every `r1_every`-th step R1 on the reals with weight gamma * r1_every in
  the same objective; a generator update, plus at every `pl_every`-th step
  the path-length penalty on B / pl_batch_shrink examples with weight
  pl_weight * pl_every (`pl_weight` 0: off); the EMA of G. Steps are
  counted from 0 by the step itself, as gen_jax's state.step: time a whole
  number of cycles of max(r1_every, pl_every) steps. `real` (1, B, C, H, W).
  """
  g = StyleGAN2Generator(resolution, channels, z_dim, w_dim, mapping_layers,
                         width, max_width, mixing)
  d = StyleGAN2Discriminator(resolution, channels, width, max_width,
                             mbstd_group)
  g_opt = torch.optim.Adam(g.parameters(), lr=lr, betas=betas)
  d_opt = torch.optim.Adam(d.parameters(), lr=lr, betas=betas)
  ema = [p.detach().clone() for p in g.parameters()]
  softplus = nn.functional.softplus
  state = {"step": 0, "pl_mean": torch.zeros(())}

  def step(real: torch.Tensor) -> None:
    i, x = state["step"], real[0]
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
