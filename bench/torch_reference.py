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


# -- SNGAN (Miyato et al. 2018), mirroring gen_jax/models/resnet.py ---------

def _sn(layer: nn.Module, on: bool) -> nn.Module:
  """One power iteration per forward pass, as gen_jax's SpectralNorm."""
  return nn.utils.parametrizations.spectral_norm(layer) if on else layer


class ResGBlock(nn.Module):
  """BN -> ReLU -> up -> conv3 -> BN -> ReLU -> conv3, + up -> conv1."""

  def __init__(self, cin: int, cout: int):
    super().__init__()
    self.bn0, self.bn1 = nn.BatchNorm2d(cin), nn.BatchNorm2d(cout)
    self.conv0 = nn.Conv2d(cin, cout, 3, padding=1)
    self.conv1 = nn.Conv2d(cout, cout, 3, padding=1)
    self.shortcut = nn.Conv2d(cin, cout, 1)
    self.up = nn.Upsample(scale_factor=2, mode="nearest")

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    h = self.conv0(self.up(torch.relu(self.bn0(x))))
    h = self.conv1(torch.relu(self.bn1(h)))
    return h + self.shortcut(self.up(x))


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


class SNGANGenerator(nn.Module):
  def __init__(self, resolution: int, channels: int, width: int,
               noise_dim: int = 128):
    super().__init__()
    n = int(round(math.log2(resolution // 4)))
    self.width = width
    self.dense = nn.Linear(noise_dim, 4 * 4 * width)
    self.blocks = nn.Sequential(*[ResGBlock(width, width) for _ in range(n)])
    self.bn = nn.BatchNorm2d(width)
    self.out = nn.Conv2d(width, channels, 3, padding=1)

  def forward(self, z: torch.Tensor) -> torch.Tensor:
    x = self.dense(z).view(z.shape[0], 4, 4, self.width).permute(0, 3, 1, 2)
    x = torch.relu(self.bn(self.blocks(x)))
    return torch.tanh(self.out(x))


class SNGANDiscriminator(nn.Module):
  def __init__(self, channels: int, width: int, down: tuple[bool, ...]):
    super().__init__()
    self.blocks = nn.Sequential(*[
        ResDBlock(channels if i == 0 else width, width, d, i == 0)
        for i, d in enumerate(down)])
    self.out = _sn(nn.Linear(width, 1), True)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    phi = torch.relu(self.blocks(x)).sum(dim=(2, 3))
    return self.out(phi)[:, 0]


def sngan_step(resolution: int, channels: int, g_width: int, d_width: int,
               d_down: tuple[bool, ...], batch: int = 64,
               noise_dim: int = 128, n_critic: int = 5) -> Step:
  """SNGAN's update (configs/sngan.py): n_critic hinge-loss critic updates,
  each on fresh fakes, then a generator update; Adam 2e-4, betas (0, 0.9).
  `real` is (n_critic, B, C, H, W)."""
  g = SNGANGenerator(resolution, channels, g_width, noise_dim)
  d = SNGANDiscriminator(channels, d_width, d_down)
  opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.0, 0.9))
  opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.0, 0.9))

  def step(real: torch.Tensor) -> None:
    for x in real:
      with torch.no_grad():
        fake = g(torch.randn(batch, noise_dim))
      d.zero_grad()
      (torch.relu(1 - d(x)).mean() + torch.relu(1 + d(fake)).mean()
       ).backward()
      opt_d.step()
    g.zero_grad()
    (-d(g(torch.randn(batch, noise_dim))).mean()).backward()
    opt_g.step()
  return step
