"""PyTorch (eager) references of gen_jax's DCGAN, WGAN-GP, VAE, SNGAN and
BigGAN steps (StyleGAN2's: bench/torch_stylegan2.py).

The architectures mirror gen_jax.models (dcgan.py, vae.py, resnet.py) layer
for layer: same widths, kernels, strides, paddings, biases, normalisations
and activations, NCHW instead of NHWC. The DCGAN generator's first layer is
a Linear on z, as in gen_jax (the PyTorch example's 4x4 ConvTranspose2d of a
1x1 input is the same map). The updates follow the PyTorch DCGAN example
(github.com/pytorch/examples/blob/main/dcgan/main.py) and Gulrajani et al.
2017, Algorithm 1, with logits + BCEWithLogits instead of Sigmoid + BCELoss
(same function); SNGAN's and BigGAN's follow gen_jax's GAN trainer with
their configs (configs/sngan.py, configs/biggan.py). Every step carries its
networks (`param_counts`); tests/test_torch_reference.py checks that they
have as many parameters as gen_jax's.
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


Step = Callable[..., None]  # step(real) or, conditional, step(real, labels)


def with_networks(step: Step, **networks: nn.Module) -> Step:
  """`step`, carrying its networks (`step.networks`) for parameter counts."""
  step.networks = networks
  return step


def param_counts(step: Step) -> dict[str, int]:
  """Parameters of each network of a step made here."""
  return {name: sum(p.numel() for p in m.parameters())
          for name, m in step.networks.items()}


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
  return with_networks(step, generator=g, discriminator=d)


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
  return with_networks(step, generator=g, discriminator=d)


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
  return with_networks(step, vae=modules)


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
    w = w.flatten(1)
    gram = w @ w.T
    total = total + gram.pow(2).sum() - gram.diagonal().pow(2).sum()
  return total


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
                orthogonal_weight: float = 1e-4, ema_decay: float = 0.9999,
                lr: float = 2e-4,
                betas: tuple[float, float] = (0.0, 0.999)) -> Step:
  """BigGAN's update as configs/biggan.py (`biggan_networks`): hinge loss,
  n_critic critic updates (the leading axis of `real`), Adam (lr, betas)
  for both networks, orthogonal regularisation of G (weight
  `orthogonal_weight`) and an EMA of G after each generator update."""
  g, d = biggan_networks(resolution, channels, width, d_down, num_classes,
                         shared_dim, noise_dim, d_mult, g_attention,
                         d_attention)
  adam = lambda m: torch.optim.Adam(m.parameters(), lr=lr, betas=betas)
  return _hinge_gan_step(
      g, d, batch, noise_dim, adam(g), adam(d), num_classes,
      lambda: orthogonal_weight * orthogonal(g), ema_decay)

