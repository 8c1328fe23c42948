"""The PyTorch references of bench/ (torch_reference.py, torch_stylegan2.py)
have gen_jax's architectures: as many parameters per network for every case
bench/train_steps.py times, and for StyleGAN2 the same outputs at equal
weights."""

import pytest

pytest.importorskip("torch")

from bench import torch_reference, train_steps  # noqa: E402

@pytest.mark.parametrize("name", list(train_steps.CASES))
def test_reference_has_the_same_parameter_counts(name):
  case = train_steps.CASES[name]
  _, trainer = train_steps.build_trainer(case)
  assert (torch_reference.param_counts(case.torch_step())
          == train_steps.param_counts(trainer))


def _load_stylegan2(module, params) -> None:
  """Copies gen_jax StyleGAN2 parameters (NHWC, (in, out) kernels) into the
  PyTorch module of the same name (NCHW, (out, in) weights)."""
  import numpy as np
  import torch

  def tensor(x):
    x = np.array(x)
    if x.ndim == 4:    # (k, k, I, O) -> (O, I, k, k)
      x = x.transpose(3, 2, 0, 1)
    elif x.ndim == 2:  # (I, O) -> (O, I)
      x = x.T
    elif x.ndim == 3:  # the constant (4, 4, C) -> (C, 4, 4)
      x = x.transpose(2, 0, 1)
    # (ascontiguousarray makes a 0-d array, a noise strength, 1-d)
    return torch.from_numpy(np.ascontiguousarray(x)).reshape(x.shape)

  def layer(m, p):
    with torch.no_grad():
      for name, value in p.items():
        if isinstance(value, dict):
          layer(getattr(m, name), value)
        else:
          target = {"kernel": "weight"}.get(name, name)
          getattr(m, target).copy_(tensor(value))

  for name, p in params.items():
    if name.startswith("map"):
      layer(module.mapping_net[int(name[3:])], p)
    elif name == "const":
      with torch.no_grad():
        module.const.copy_(tensor(p))
    elif name[0] == "b" and name[1].isdigit():  # b{r}_{part}
      r, part = name[1:].split("_", 1)
      k = int(r).bit_length() - 3                 # r = 4 * 2^k
      if part == "torgb":
        layer(module.to_rgbs[k], p)
      elif hasattr(module, "convs"):              # 4x4 has conv1 only
        layer(module.convs[k][0 if k == 0 else int(part[-1])], p)
      else:                                       # critic blocks: R .. 8
        layer(module.blocks[len(module.blocks) - k][part], p)
    else:
      layer(getattr(module, name), p)


def test_stylegan2_reference_computes_the_same_networks():
  """Forward parity at equal weights: the critic's logits and the
  generator's images (noise strengths start at 0, so noise draws do not
  matter; no mixing outside training)."""
  import jax
  import numpy as np
  import torch

  from bench import torch_stylegan2
  from gen_jax.models import stylegan2

  res, ch, width, z_dim = 16, 3, 64, 32
  g = stylegan2.Generator(resolution=res, channels=ch, z_dim=z_dim,
                          w_dim=z_dim, mapping_layers=2, width=width,
                          max_width=32)
  d = stylegan2.Discriminator(width=width, max_width=32, mbstd_group=2)
  key = jax.random.key(0)
  z = np.array(jax.random.normal(key, (4, z_dim)))
  x = np.array(jax.random.normal(jax.random.fold_in(key, 1),
                                   (4, res, res, ch)))
  rngs = {"params": key, "noise": key, "mixing": key}
  g_vars = g.init(rngs, z, train=False)
  d_vars = d.init(key, x)
  tg = torch_stylegan2.StyleGAN2Generator(res, ch, z_dim, z_dim, 2, width,
                                          32, mixing=0.0)
  td = torch_stylegan2.StyleGAN2Discriminator(res, ch, width, 32, 2)
  _load_stylegan2(tg, g_vars["params"])
  _load_stylegan2(td, d_vars["params"])

  img = g.apply(g_vars, z, train=False, rngs={"noise": key})
  with torch.no_grad():
    w = tg._w(torch.from_numpy(z))
    t_img = tg.synthesis(w[:, None].expand(-1, tg.num_ws, -1))
  np.testing.assert_allclose(t_img.numpy().transpose(0, 2, 3, 1), img,
                             rtol=1e-4, atol=1e-4)
  logits = d.apply(d_vars, x)
  with torch.no_grad():
    t_logits = td(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))
  np.testing.assert_allclose(t_logits.numpy(), logits, rtol=1e-4, atol=1e-4)


def test_biggan_reference_with_self_attention_has_the_same_parameter_counts():
  """configs/biggan.py leaves self-attention off; with it on (after G's
  8x8 block and D's first 8x8 output) the counts still match."""
  import jax
  import jax.numpy as jnp
  import numpy as np

  from gen_jax.models import resnet

  g = resnet.Generator(resolution=16, channels=1, width=32, num_classes=10,
                       shared_dim=32, hierarchical=True, spectral_norm=True,
                       attention=8)
  d = resnet.Discriminator(width=32, mult=(1, 1, 1), down=(True, True, False),
                           attention=8, num_classes=10, projection=True)
  y = jnp.zeros((2,), jnp.int32)
  count = lambda m, *args: sum(
      int(np.prod(x.shape)) for x in jax.tree.leaves(jax.eval_shape(
          lambda k: m.init(k, *args, train=False), jax.random.key(0))[
              "params"]))
  tg, td = torch_reference.biggan_networks(
      16, 1, 32, (True, True, False), num_classes=10, shared_dim=32,
      noise_dim=120, d_mult=(1, 1, 1), g_attention=8, d_attention=8)
  numel = lambda m: sum(p.numel() for p in m.parameters())
  assert numel(tg) == count(g, jnp.zeros((2, 120)), y)
  assert numel(td) == count(d, jnp.zeros((2, 16, 16, 1)), y)
  assert tg.attention is not None and td.attention is not None
