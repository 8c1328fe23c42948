"""The SNGAN/BigGAN ResNets (models/resnet.py): block shapes, conditional
batch norm, hierarchical latents, self-attention, config checks."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config
from gen_jax import config_lib
from gen_jax.errors import ConfigError
from gen_jax.models import resnet

KEY = jax.random.key(0)


def _normal(shape, seed=0):
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape),
                     jnp.float32)


@pytest.mark.parametrize("resolution", [16, 32])
def test_generator_and_critic_shapes(resolution):
  g = resnet.Generator(resolution=resolution, channels=3, width=8)
  z = _normal((4, 16))
  variables = g.init(KEY, z, None, train=False)
  x = g.apply(variables, z, None, train=False)
  assert x.shape == (4, resolution, resolution, 3)
  assert float(jnp.max(jnp.abs(x))) <= 1.0
  # n up-blocks of 3x3 convs plus a 1x1 shortcut each, from a 4x4 map.
  n = resnet.num_up_blocks(resolution)
  assert sorted(k for k in variables["params"] if k.startswith("block")) == [
      f"block{i}" for i in range(n)]
  d = resnet.Discriminator(width=8, mult=(1, 2, 2), down=(True, True, False))
  dv = d.init(KEY, x, None, train=False)
  logits = d.apply(dv, x, None, train=False)
  assert logits.shape == (4,)
  # Every critic layer is spectrally normalised: a `u` vector per kernel.
  kernels = [p for p, _ in jax.tree_util.tree_flatten_with_path(dv["params"])[0]
             if p[-1].key == "kernel"]
  us = [p for p, _ in jax.tree_util.tree_flatten_with_path(
      dv["batch_stats"])[0] if p[-1].key.endswith("/u")]
  assert len(kernels) == len(us) > 0


def test_blocks_by_shape():
  x = _normal((2, 8, 8, 4))
  up = resnet.GBlock(6)
  v = up.init(KEY, x, None, train=False)
  assert up.apply(v, x, None, train=False).shape == (2, 16, 16, 6)
  for down, first, shape in [(True, True, (2, 4, 4, 6)),
                             (True, False, (2, 4, 4, 6)),
                             (False, False, (2, 8, 8, 6))]:
    blk = resnet.DBlock(6, down=down, first=first)
    v = blk.init(KEY, x, train=False)
    assert blk.apply(v, x, train=False).shape == shape
  # An identity shortcut when the width and size are kept.
  blk = resnet.DBlock(4, down=False)
  v = blk.init(KEY, x, train=False)
  assert "shortcut" not in v["params"]


def test_linear_conditional_batch_norm_by_hand():
  x = _normal((5, 2, 2, 3), 1)
  c = _normal((5, 4), 2)
  bn = resnet.LinearConditionalBatchNorm(sn=False)
  v = bn.init(KEY, x, c, train=True)
  y, _ = bn.apply(v, x, c, train=True, mutable=["batch_stats"])
  wg = np.asarray(v["params"]["gain"]["Dense_0"]["kernel"])
  wb = np.asarray(v["params"]["bias"]["Dense_0"]["kernel"])
  xn = np.asarray(x)
  normed = (xn - xn.mean((0, 1, 2))) / np.sqrt(xn.var((0, 1, 2)) + 1e-5)
  cn = np.asarray(c)
  expected = (normed * (1 + cn @ wg)[:, None, None]
              + (cn @ wb)[:, None, None])
  np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)


def _biggan_generator(**kw):
  args = dict(resolution=16, channels=1, width=8, num_classes=10,
              shared_dim=4, hierarchical=True, spectral_norm=True)
  args.update(kw)
  return resnet.Generator(**args)


def test_shared_embedding_conditions_every_block():
  g = _biggan_generator()
  z, y = _normal((3, 16), 3), jnp.array([0, 1, 2])
  v = g.init(KEY, z, y, train=False)
  # The gain/bias layers read [shared embedding (4), the block's z chunk (5)].
  for i in range(2):
    for bn in ("bn0", "bn1"):
      kernel = v["params"][f"block{i}"][bn]["LinearConditionalBatchNorm_0"][
          "gain"]["Dense_0"]["kernel"]
      assert kernel.shape[0] == 4 + 5
  out = g.apply(v, z, y, train=False)
  other = g.apply(v, z, (y + 1) % 10, train=False)
  assert not np.allclose(out, other, atol=1e-4), "the label changes nothing"
  # The label enters only through the shared embedding: with one embedding
  # row copied onto another, labels 0 and 1 give the same images.
  params = jax.tree.map(np.array, v["params"])
  params["shared"]["embedding"][1] = params["shared"]["embedding"][0]
  v2 = {**v, "params": params}
  np.testing.assert_allclose(g.apply(v2, z, jnp.zeros(3, jnp.int32),
                                     train=False),
                             g.apply(v2, z, jnp.ones(3, jnp.int32),
                                     train=False), atol=1e-6)


def test_hierarchical_latent_split():
  assert resnet.z_chunks(16, 2) == [6, 5, 5]
  assert resnet.z_chunks(128, 3) == [32, 32, 32, 32]
  g = _biggan_generator()
  z, y = _normal((2, 16), 4), jnp.array([3, 7])
  v = g.init(KEY, z, y, train=False)
  dense = v["params"]["dense"]["Dense_0"]["kernel"]
  assert dense.shape[0] == 6  # the first chunk feeds the 4x4 map
  base = g.apply(v, z, y, train=False)
  # Each chunk changes the output: none is dropped.
  for lo, hi in [(0, 6), (6, 11), (11, 16)]:
    moved = z.at[:, lo:hi].add(1.0)
    assert not np.allclose(g.apply(v, moved, y, train=False), base,
                           atol=1e-4), (lo, hi)
  # The last chunk conditions block 1 only: moving it leaves block 0's
  # output unchanged.
  capture = lambda m, _: isinstance(m, resnet.GBlock)
  _, a = g.apply(v, z, y, train=False, capture_intermediates=capture)
  _, b = g.apply(v, z.at[:, 11:].add(1.0), y, train=False,
                 capture_intermediates=capture)
  a, b = a["intermediates"], b["intermediates"]
  np.testing.assert_array_equal(a["block0"]["__call__"][0],
                                b["block0"]["__call__"][0])
  assert not np.allclose(a["block1"]["__call__"][0],
                         b["block1"]["__call__"][0], atol=1e-4)


def test_per_class_batch_norm_without_shared_embedding():
  g = resnet.Generator(resolution=16, channels=1, width=8, num_classes=10)
  z, y = _normal((2, 16), 5), jnp.array([0, 5])
  v = g.init(KEY, z, y, train=False)
  table = v["params"]["block0"]["bn0"]["ConditionalBatchNorm_0"]["gamma"][
      "embedding"]
  assert table.shape == (10, 8)
  # Tables start at gamma 1, beta 0 for every class: make them differ.
  params = jax.tree.map(np.array, v["params"])
  params["block0"]["bn0"]["ConditionalBatchNorm_0"]["gamma"]["embedding"] = (
      np.asarray(_normal((10, 8), 6)))
  v = {**v, "params": params}
  assert not np.allclose(g.apply(v, z, y, train=False),
                         g.apply(v, z, (y + 1) % 10, train=False), atol=1e-4)


def _attention_by_hand(x, p):
  def conv(name, v):
    return v @ np.asarray(p[name]["Conv_0"]["kernel"])[0, 0] + np.asarray(
        p[name]["Conv_0"]["bias"])

  def pool(v):
    b, h, w, c = v.shape
    return v.reshape(b, h // 2, 2, w // 2, 2, c).max((2, 4))

  b, h, w, c = x.shape
  theta = conv("theta", x).reshape(b, h * w, -1)
  phi = pool(conv("phi", x)).reshape(b, -1, c // 8)
  g = pool(conv("g", x)).reshape(b, -1, c // 2)
  s = theta @ phi.transpose(0, 2, 1)
  s = np.exp(s - s.max(-1, keepdims=True))
  s = s / s.sum(-1, keepdims=True)
  o = conv("out", (s @ g).reshape(b, h, w, c // 2))
  return x + float(p["gamma"]) * o


def test_self_attention_identity_at_init_then_by_hand():
  x = _normal((2, 4, 4, 16), 6)
  att = resnet.SelfAttention(sn=False)
  v = att.init(KEY, x, train=False)
  np.testing.assert_array_equal(att.apply(v, x, train=False), x)
  params = jax.tree.map(np.array, v["params"])
  params["gamma"] = np.asarray(0.7, np.float32)
  for name in ("theta", "phi", "g", "out"):
    params[name]["Conv_0"]["bias"] = np.full_like(
        params[name]["Conv_0"]["bias"], 0.1)
  y = att.apply({"params": params}, x, train=False)
  assert y.shape == x.shape
  np.testing.assert_allclose(y, _attention_by_hand(np.asarray(x), params),
                             rtol=1e-4, atol=1e-5)


def test_attention_is_placed_at_its_resolution():
  g = resnet.Generator(resolution=32, channels=3, width=8, attention=16)
  v = g.init(KEY, _normal((2, 16)), None, train=False)
  assert "attention" in v["params"]
  d = resnet.Discriminator(width=8, attention=8)
  dv = d.init(KEY, _normal((2, 32, 32, 3)), None, train=False)
  assert "attention" in dv["params"]
  _, inter = d.apply(dv, _normal((2, 32, 32, 3)), None, train=False,
                     capture_intermediates=lambda m, _:
                     isinstance(m, resnet.SelfAttention))
  assert inter["intermediates"]["attention"]["__call__"][0].shape == (
      2, 8, 8, 8)


@pytest.mark.parametrize("field,value,message", [
    ("g_mult", (1, 2), "config.model.resnet.g_mult=(1, 2) needs 3 entries "
     "at 16 px"),
    ("d_down", (True, True), "config.model.resnet.d_mult=(1, 1, 1) and "
     "d_down=(True, True) need the same"),
    ("g_attention", 4, "config.model.resnet.g_attention=4 must be 0 or a "
     "generator block's resolution [8, 16]"),
    ("d_attention", 2, "config.model.resnet.d_attention=2 must be 0 or an "
     "even critic block resolution [4, 8]"),
])
def test_resnet_config_errors(field, value, message):
  c = load_config("sngan", "small")
  c.model.resnet[field] = value
  with pytest.raises(ConfigError, match=re.escape(message)):
    config_lib.validate(c)


def test_resnet_critic_norm_is_spectral_or_none():
  c = load_config("sngan", "small")
  c.model.d_norm = "batch"
  with pytest.raises(ConfigError, match=re.escape(
      "config.model.d_norm='batch' is not one of: spectral, none")):
    config_lib.validate(c)
