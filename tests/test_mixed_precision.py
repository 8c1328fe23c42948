"""bfloat16 compute with float32 parameters (config.model.compute_dtype)."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config
from gen_jax import config_lib, train
from gen_jax.errors import ConfigError
from gen_jax.trainers import gan


def _dtypes(tree):
  return {str(x.dtype) for x in jax.tree.leaves(tree)
          if jnp.issubdtype(x.dtype, jnp.inexact)}


@pytest.mark.parametrize("name", ["sngan", "dcgan", "stylegan2"])
def test_bfloat16_step_keeps_float32_state_and_the_guard(name):
  c = load_config(name, "small")
  c.model.compute_dtype = "bfloat16"
  c.train.on_nonfinite = "skip"
  c.gan.n_critic = 1  # one compiled critic update is enough here
  s = train.setup(c)
  state = s.init(s.key)
  batch = s.batch(s.stream())
  new, metrics = s.train_step(state, batch)
  # Parameters, both optimizers' moments, EMA, batch-norm and spectral-norm
  # statistics: float32; the losses too.
  assert _dtypes((new.params, new.opt_state, new.model_state, new.ema)) == {
      "float32"}
  assert all(v.dtype == jnp.float32 for v in metrics.values())
  assert float(metrics["nonfinite"]) == 0.0
  assert all(np.isfinite(float(v)) for v in metrics.values())
  # The networks compute in bfloat16 (their convolutions' outputs; for
  # StyleGAN2 test_bfloat16_stylegan2_computes_the_same_function checks it:
  # its eager forward here takes minutes).
  if name != "stylegan2":
    z = jnp.zeros((2, c.model.noise_dim))
    _, inter = s.trainer.generator.apply(
        {"params": new.params["generator"], **new.model_state["generator"]},
        z, None, train=False,
        capture_intermediates=lambda m, _: isinstance(
            m, jax.tree_util.Partial) or type(m).__name__ in ("Conv",
                                                               "Dense"))
    outs = jax.tree.leaves(inter)
    assert outs and {str(o.dtype) for o in outs} == {"bfloat16"}
  # A poisoned step is dropped: every parameter keeps its value.
  poisoned = jax.tree.map(lambda x: x, batch)
  poisoned["x"] = jnp.full_like(batch["x"], jnp.nan)
  before = jax.tree.map(np.asarray, new.params)
  after, metrics = s.train_step(new, poisoned)
  assert float(metrics["nonfinite"]) == 1.0
  jax.tree.map(np.testing.assert_array_equal, before,
               jax.tree.map(np.asarray, after.params))
  assert int(after.step) == 2


def test_bfloat16_critic_computes_the_same_function():
  """The same float32 parameters through float32 and bfloat16 compute:
  logits agree to bfloat16's precision."""
  from gen_jax.models import resnet
  x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (4, 16, 16, 3)),
                  jnp.float32)
  kw = dict(width=16, mult=(1, 1, 1), down=(True, True, False))
  f32 = resnet.Discriminator(**kw)
  variables = f32.init(jax.random.key(0), x, None, train=False)
  a = f32.apply(variables, x, None, train=False)
  b = resnet.Discriminator(**kw, dtype=jnp.bfloat16).apply(
      variables, x, None, train=False)
  assert b.dtype == jnp.float32
  np.testing.assert_allclose(b, a, rtol=0.05, atol=0.05 * float(
      jnp.max(jnp.abs(a))))
  assert not np.array_equal(a, b)  # it did compute in bfloat16


def test_bfloat16_stylegan2_computes_the_same_function():
  """StyleGAN2's generator and critic with the same float32 parameters in
  float32 and bfloat16 compute: images and logits agree to bfloat16's
  precision and come out float32."""
  from gen_jax.models import stylegan2
  kw = dict(resolution=8, channels=1, z_dim=8, w_dim=8, mapping_layers=1,
            width=16, max_width=16)
  z = jax.random.normal(jax.random.key(0), (4, 8))
  rngs = {"noise": jax.random.key(1)}
  g32 = stylegan2.Generator(**kw)
  gv = jax.jit(lambda k: g32.init({"params": k, **rngs}, z, None, False))(
      jax.random.key(2))
  run = lambda g: jax.jit(lambda v: g.apply(v, z, None, False, rngs=rngs))(gv)
  a, b = run(g32), run(stylegan2.Generator(**kw, dtype=jnp.bfloat16))
  assert b.dtype == jnp.float32 and not np.array_equal(a, b)
  np.testing.assert_allclose(b, a, rtol=0.05, atol=0.05 * float(
      jnp.max(jnp.abs(a))))
  d32 = stylegan2.Discriminator(width=16, max_width=16)
  dv = jax.jit(d32.init)(jax.random.key(3), a)
  crit = lambda d: jax.jit(lambda v: d.apply(v, a))(dv)
  a, b = crit(d32), crit(stylegan2.Discriminator(width=16, max_width=16,
                                                  dtype=jnp.bfloat16))
  assert b.dtype == jnp.float32 and not np.array_equal(a, b)
  np.testing.assert_allclose(b, a, rtol=0.05, atol=0.05 * float(
      jnp.max(jnp.abs(a))))


def test_compute_dtype_errors():
  c = load_config("gan_2d", "ring,small")
  c.model.compute_dtype = "bfloat16"
  with pytest.raises(ConfigError, match=re.escape(
      "arch 'mlp' computes in float32 only; mixed precision: dcgan, resnet, "
      "stylegan2")):
    config_lib.validate(c)
  c = load_config("sngan", "small")
  c.model.compute_dtype = "float16"
  with pytest.raises(ConfigError, match=re.escape(
      "config.model.compute_dtype='float16' is not one of: float32, "
      "bfloat16")):
    config_lib.validate(c)
  assert gan.COMPUTE_DTYPES == ("float32", "bfloat16")
