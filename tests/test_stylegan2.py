"""StyleGAN2 (models/stylegan2.py, the path-length term, configs/stylegan2.py)
against hand and NumPy computations."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import assert_bitwise_equal, load_config
from gen_jax import checkpoint, config_lib, data, objectives, train
from gen_jax.errors import ConfigError
from gen_jax.models import stylegan2
from gen_jax.trainers import gan


def _np_conv_same(x, w):
  """'SAME' cross-correlation of x (H, W, I) with w (k, k, I, O), loops."""
  k = w.shape[0]
  p = k // 2
  xp = np.pad(x, ((p, p), (p, p), (0, 0)))
  h, wd = x.shape[:2]
  out = np.zeros((h, wd, w.shape[-1]))
  for i in range(h):
    for j in range(wd):
      out[i, j] = np.einsum("abi,abio->o", xp[i:i + k, j:j + k], w)
  return out


@pytest.mark.parametrize("demodulate", [True, False])
def test_modulated_conv_is_a_per_example_convolution(demodulate):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 5, 6, 3))
  w = rng.normal(size=(3, 3, 3, 4))
  s = rng.normal(size=(2, 3)) + 1.0
  got = stylegan2.modulated_conv(jnp.asarray(x, jnp.float32),
                                 jnp.asarray(w, jnp.float32),
                                 jnp.asarray(s, jnp.float32), demodulate)
  for b in range(2):
    wb = w * s[b][None, None, :, None]                  # w'_ijk = s_i w_ijk
    if demodulate:
      wb = wb / np.sqrt(np.sum(wb ** 2, axis=(0, 1, 2)) + 1e-8)
    np.testing.assert_allclose(np.asarray(got[b]), _np_conv_same(x[b], wb),
                               rtol=1e-4, atol=1e-4)


def test_demodulation_gives_each_output_a_unit_weight_norm():
  """Impulses in each input channel read the per-example kernel back out:
  the squares of its taps for output j sum to 1 (eps 1e-8 aside)."""
  rng = np.random.default_rng(1)
  w = jnp.asarray(rng.normal(size=(3, 3, 4, 5)) * 7.0, jnp.float32)
  s = jnp.asarray(rng.uniform(0.1, 3.0, size=(1, 4)), jnp.float32)
  norm2 = np.zeros(5)
  for i in range(4):
    x = np.zeros((1, 7, 7, 4), np.float32)
    x[0, 3, 3, i] = 1.0
    y = np.asarray(stylegan2.modulated_conv(jnp.asarray(x), w, s))
    norm2 += np.sum(y[0] ** 2, axis=(0, 1))
  np.testing.assert_allclose(norm2, np.ones(5), rtol=1e-5)


def test_equalised_learning_rate_scales_at_run_time():
  x = jnp.asarray(np.random.default_rng(2).normal(size=(3, 16)), jnp.float32)
  layer = stylegan2.EqualDense(4, lr_mul=0.01, bias_init=1.0)
  v = jax.jit(layer.init)(jax.random.key(0), x)
  kernel, bias = v["params"]["kernel"], v["params"]["bias"]
  # stored N(0, 1) / lr_mul; effective N(0, 1 / fan_in)
  assert float(jnp.std(kernel)) == pytest.approx(100.0, rel=0.2)
  np.testing.assert_allclose(np.asarray(bias), 100.0)  # 1.0 / lr_mul
  expected = x @ (kernel * 0.01 / 4.0) + bias * 0.01
  np.testing.assert_allclose(np.asarray(jax.jit(layer.apply)(v, x)),
                             np.asarray(expected), rtol=1e-5)
  conv = stylegan2.EqualConv(2, 3)
  img = jnp.ones((1, 5, 5, 6))
  cv = jax.jit(conv.init)(jax.random.key(1), img)
  w = np.asarray(cv["params"]["kernel"]) / math.sqrt(3 * 3 * 6)
  np.testing.assert_allclose(np.asarray(jax.jit(conv.apply)(cv, img))[0],
                             _np_conv_same(np.ones((5, 5, 6)), w),
                             rtol=1e-4, atol=1e-5)


def _np_upfirdn2d(x, up=1, down=1, pad=(0, 0), gain=1.0):
  """The official upfirdn2d (stylegan2-ada-pytorch), loops: x (B, H, W, C)
  upsampled by inserting up - 1 zeros after each sample, zero-padded,
  convolved with outer([1,3,3,1], [1,3,3,1]) / 64 * gain, every down-th
  sample kept."""
  b, h, w, c = x.shape
  u = np.zeros((b, h * up, w * up, c))
  u[:, ::up, ::up] = x
  u = np.pad(u, ((0, 0), pad, pad, (0, 0)))
  f = np.outer([1, 3, 3, 1], [1, 3, 3, 1]).astype(np.float64)
  f = f / f.sum() * gain
  k = f.shape[0]
  out = np.zeros((b, u.shape[1] - k + 1, u.shape[2] - k + 1, c))
  for i in range(out.shape[1]):
    for j in range(out.shape[2]):
      for a in range(k):
        for d in range(k):   # a convolution: the filter flipped
          out[:, i, j] += u[:, i + a, j + d] * f[k - 1 - a, k - 1 - d]
  return out[:, ::down, ::down]


@pytest.mark.parametrize("fn,kwargs", [
    (stylegan2.upsample2d, {"up": 2, "pad": (2, 1), "gain": 4.0}),
    (lambda x: stylegan2.upsample2d(x, border=True),
     {"up": 2, "pad": (3, 2), "gain": 4.0}),
    (stylegan2.downsample2d, {"down": 2, "pad": (1, 1)}),
    (lambda x: stylegan2.upfirdn2d(x, pad=(2, 2)), {"pad": (2, 2)}),
])
def test_fir_resampling_matches_upfirdn2d(fn, kwargs):
  """upsample2d, downsample2d and the critic's blur before its stride-2
  convolutions, on odd and even sizes."""
  x = np.random.default_rng(7).normal(size=(2, 6, 5, 3))
  got = np.asarray(jax.jit(fn)(jnp.asarray(x, jnp.float32)))
  want = _np_upfirdn2d(x, **kwargs)
  assert got.shape == want.shape
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_up_conv_is_the_official_transposed_conv_then_filter():
  """The generator's upsample2d(border=True) + 'VALID' 3x3 conv is the
  official conv2d_resample(up=2): a stride-2 transposed convolution (the
  kernel flipped: the official code's flip_weight is a reparametrisation),
  then upfirdn2d with padding (1, 1) and gain 4. (Upsampling to 2H and a
  'SAME' conv would differ at the border.)"""
  rng = np.random.default_rng(8)
  x = rng.normal(size=(1, 4, 5, 2))
  w = rng.normal(size=(3, 3, 2, 3))
  h, wd = x.shape[1:3]
  t = np.zeros((1, 2 * h + 1, 2 * wd + 1, 3))
  for i in range(h):
    for j in range(wd):
      t[0, 2 * i:2 * i + 3, 2 * j:2 * j + 3] += np.einsum(
          "c,abco->abo", x[0, i, j], w)
  want = _np_upfirdn2d(t, pad=(1, 1), gain=4.0)
  up = stylegan2.upsample2d(jnp.asarray(x, jnp.float32), border=True)
  got = stylegan2.modulated_conv(up, jnp.asarray(w[::-1, ::-1], jnp.float32),
                                 jnp.ones((1, 2)), demodulate=False,
                                 padding="VALID")
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-5)


def test_conditional_mapping_and_critic_by_hand():
  """G: w = mapping([norm(z), norm(embed(onehot(y)))]); D: logit =
  sum(out(x) * cmap(y)) / sqrt(cmap_dim), cmap = mapping(norm(embed(y)))."""
  lrelu = lambda v: np.where(v > 0, v, 0.2 * v) * math.sqrt(2)
  dense = lambda p, v, lr=1.0: (v @ (np.asarray(p["kernel"]) * lr
                                     / math.sqrt(v.shape[-1]))
                                + np.asarray(p["bias"]) * lr)
  norm = lambda v: v / np.sqrt(np.mean(v ** 2, -1, keepdims=True) + 1e-8)
  y = jnp.array([0, 2, 1, 2])
  z = np.random.default_rng(9).normal(size=(4, 4))
  g = stylegan2.Generator(resolution=8, channels=1, z_dim=4, w_dim=4,
                          mapping_layers=1, width=8, num_classes=3)
  gv = g.init({"params": jax.random.key(0), "noise": jax.random.key(1)},
              jnp.asarray(z, jnp.float32), y, train=False)
  p = gv["params"]
  w = g.apply(gv, jnp.asarray(z, jnp.float32), y, method="mapping")
  e = norm(dense(p["embed"], np.eye(3)[np.asarray(y)]))
  want = lrelu(dense(p["map0"], np.concatenate([norm(z), e], -1), 0.01))
  np.testing.assert_allclose(np.asarray(w[:, 0]), want, rtol=1e-4, atol=1e-5)
  assert not np.allclose(w[0], g.apply(gv, jnp.asarray(z, jnp.float32),
                                       y + 1, method="mapping")[0])
  d = stylegan2.Discriminator(width=32, max_width=8, mbstd_group=2,
                              num_classes=3, mapping_layers=1)
  x = jnp.asarray(np.random.default_rng(10).normal(size=(4, 8, 8, 1)),
                  jnp.float32)
  dv = d.init(jax.random.key(2), x, y)
  logits, inter = d.apply(dv, x, y, capture_intermediates=True)
  q = dv["params"]
  out = np.asarray(inter["intermediates"]["out"]["__call__"][0])
  assert out.shape == (4, 8)    # cmap_dim: the 4x4 width
  cmap = lrelu(dense(q["cmap0"], norm(dense(q["cmap_embed"],
                                            np.eye(3)[np.asarray(y)])),
                     0.01))
  np.testing.assert_allclose(np.asarray(logits),
                             np.sum(out * cmap, -1) / math.sqrt(8),
                             rtol=1e-4, atol=1e-5)


def test_path_length_on_a_linear_generator():
  """g(ws) = sum_l ws_l A_l: J^T y is known, so are the lengths."""
  rng = np.random.default_rng(3)
  n, num_ws, w_dim, h = 4, 3, 5, 2
  a = rng.normal(size=(num_ws, w_dim, h, h, 1))
  ws = jnp.asarray(rng.normal(size=(n, num_ws, w_dim)), jnp.float32)
  synthesis = lambda v: jnp.einsum("nlw,lwxyc->nxyc", v,
                                   jnp.asarray(a, jnp.float32))
  key = jax.random.key(5)
  inputs = {"ws": ws, "synthesis": synthesis, "key": key,
            "aux": {"pl_mean": jnp.float32(0.5)}, "pl_decay": 0.01,
            "pl_batch_shrink": 2}
  penalty, new = objectives.path_length(inputs)
  y = np.asarray(jax.random.normal(jax.random.fold_in(key, 11),
                                   (2, h, h, 1))) / h      # / sqrt(H W)
  jty = np.einsum("nxyc,lwxyc->nlw", y, a)                  # J^T y, (2, L, W)
  lengths = np.sqrt(np.mean(np.sum(jty ** 2, axis=2), axis=1))
  pl_mean = 0.5 + 0.01 * (lengths.mean() - 0.5)
  assert float(new["pl_mean"]) == pytest.approx(pl_mean, rel=1e-5)
  assert float(penalty) == pytest.approx(np.mean((lengths - pl_mean) ** 2),
                                         rel=1e-4)


def _trainer(arg="small", **changes):
  c = load_config("stylegan2", arg)
  for k, v in changes.items():
    c.gan[k] = v
  config_lib.validate(c)
  return c, gan.GanTrainer(c, data.get_dataset(c.data).info)


def test_lazy_r1_every_16_steps_with_weight_times_16():
  c, t = _trainer(penalty_every=16)
  assert c.gan.penalty == "r1"
  x = jnp.asarray(np.random.default_rng(4).normal(size=(3, 2, 2, 1)),
                  jnp.float32)
  inputs = {"real_logits": jnp.zeros(3), "fake_logits": jnp.zeros(3),
            "real": x, "fake": x, "key": jax.random.key(0),
            "critic": lambda v: jnp.sum(v ** 2, axis=(1, 2, 3))}
  r1 = 0.5 * np.mean(np.sum((2 * np.asarray(x)) ** 2, axis=(1, 2, 3)))
  d_loss = 2 * math.log(2.0)  # non-saturating at logits 0
  fn = jax.jit(lambda step: objectives.objective(t.terms, "discriminator",
                                                 inputs, step))
  for step in (0, 16, 32):
    total, m = fn(jnp.asarray(step))
    assert float(m["penalty"]) == pytest.approx(r1, rel=1e-5)
    assert float(total) == pytest.approx(
        d_loss + 16 * c.gan.penalty_weight * r1, rel=1e-5)
  for step in (1, 15, 17):
    total, m = fn(jnp.asarray(step))
    assert float(m["penalty"]) == 0.0
    assert float(total) == pytest.approx(d_loss, rel=1e-6)


_G = stylegan2.Generator(resolution=8, channels=1, z_dim=4, w_dim=4,
                         mapping_layers=2, width=8)
_Z = jax.random.normal(jax.random.key(0), (6, 4))


@pytest.fixture(scope="module")
def g_vars():
  """One small generator's variables (the fields below change no shapes)."""
  return jax.jit(lambda k: _G.init(k, _Z, train=False))(jax.random.key(1))


def test_generator_w_avg_truncation_mixing_and_rgbs(g_vars):
  """One compiled program (compiling is the slow part on CPU), four checks:
  w_avg follows w in training only; truncation moves toward it; style
  mixing changes the output only when enabled (and keeps the first style);
  synthesis returns each resolution's RGB, summed after upsampling."""
  z = _Z
  tracked = _G.clone(mixing=0.0, w_avg_beta=0.9)
  off, on = _G.clone(mixing=0.0), _G.clone(mixing=1.0)
  rngs = lambda k: {"noise": jax.random.key(3), "mixing": jax.random.key(k)}

  @jax.jit
  def run(v):
    _, new = tracked.apply(v, z, train=True, mutable=["tracked"],
                           rngs=rngs(0))
    _, same = tracked.apply(v, z, train=False, mutable=["tracked"],
                            rngs=rngs(0))
    w = tracked.apply(v, z, method=lambda m, z: m._w(z))  # pylint: disable=protected-access
    v2 = {**v, **new}
    maps = [tracked.apply(v2, z, method="mapping", truncation=p)
            for p in (1.0, 0.5, 0.0)]
    out = lambda g, k: g.apply(v, z, train=True, mutable=["tracked"],
                               rngs=rngs(k))[0]
    mixing = [out(off, 1), out(off, 2), out(on, 1), out(on, 2)]
    ws, _ = on.apply(v, z, train=True, method="mapping",
                     mutable=["tracked"], rngs=rngs(4))
    own = on.apply(v, z, method="mapping")
    rgbs = on.apply(v, own, method="synthesis", return_rgbs=True,
                    rngs=rngs(0))
    return new, same, w, maps, mixing, ws, own, rgbs

  new, same, w, maps, mixing, ws, own, (img, rgbs) = jax.tree.map(
      np.asarray, run(g_vars))
  # w_avg: 0 + (1 - 0.9) (mean w - 0) after one training pass; not in eval
  avg = new["tracked"]["w_avg"]
  np.testing.assert_allclose(avg, 0.1 * w.mean(0), rtol=1e-5, atol=1e-7)
  np.testing.assert_array_equal(same["tracked"]["w_avg"], 0.0)
  full, half, zero = maps
  np.testing.assert_allclose(half, avg + 0.5 * (full - avg), rtol=1e-5,
                             atol=1e-6)
  np.testing.assert_allclose(zero, np.broadcast_to(avg, zero.shape),
                             atol=1e-6)
  off1, off2, on1, on2 = mixing
  np.testing.assert_array_equal(off1, off2)
  assert not np.allclose(on1, on2) and not np.allclose(on1, off1)
  # mixing 1: the first style is the example's own w; every example takes
  # some later styles from another z
  np.testing.assert_allclose(ws[:, 0], own[:, 0], rtol=1e-6)
  # one cutoff for the batch (the official draw): the same later styles
  # replaced in every example
  replaced = np.any(np.abs(ws - own) > 1e-6, axis=2)     # (B, num_ws)
  assert replaced[:, -1].all() and not replaced[:, 0].any()
  np.testing.assert_array_equal(replaced, np.broadcast_to(replaced[0],
                                                          replaced.shape))
  # StyleGAN2's noise strength: one scalar per layer
  assert g_vars["params"]["b8_conv0"]["noise_strength"].shape == ()
  assert [r.shape for r in rgbs] == [(6, 4, 4, 1), (6, 8, 8, 1)]
  up = stylegan2.upsample2d(jnp.asarray(rgbs[0]))
  np.testing.assert_allclose(img, np.asarray(up) + rgbs[1], rtol=1e-5,
                             atol=1e-6)


def _leaves(state) -> dict:
  """{path: numpy array} of a TrainState (PRNG keys as their key data)."""
  is_key = lambda x: jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
  flat = jax.tree_util.tree_flatten_with_path(state)[0]
  return {jax.tree_util.keystr(p): np.asarray(
      jax.random.key_data(v) if is_key(v) else v) for p, v in flat}


def test_pl_mean_and_w_avg_survive_a_checkpoint_bitwise(tmp_path):
  """Four steps straight, or two, a checkpoint written and read back (the
  loop's Checkpointer), and two more: the same state bit for bit, pl_mean
  and w_avg included. One compiled step for both (compiling is the cost;
  the loop's resume itself is tested for every state leaf in
  test_resume.py and, for state.aux, ADA's test in test_augment.py)."""
  c = load_config("stylegan2", "small")
  s = train.setup(c)
  stream = s.stream()
  batches = [s.batch(stream) for _ in range(4)]
  step = s.step_for(0)
  ref = s.init(s.key)
  for b in batches:
    ref, _ = step(ref, b)
  state = s.init(s.key)
  for b in batches[:2]:
    state, _ = step(state, b)
  at2 = float(state.aux["pl_mean"])
  assert at2 > 0      # updated at step 0 (every 2 steps in `small`)
  ckpt = checkpoint.Checkpointer(str(tmp_path))
  ckpt.save(2, state, {}, {})
  ckpt.wait()
  restored, _, _ = ckpt.restore(2, state)
  ckpt.close()
  for b in batches[2:]:
    restored, _ = step(restored, b)
  assert float(restored.aux["pl_mean"]) != at2
  got, want = _leaves(restored), _leaves(ref)
  assert any("w_avg" in k for k in got)
  assert_bitwise_equal(got, want)


@pytest.mark.parametrize("section,field,value,message", [
    ("model.stylegan2", "mixing", 1.5,
     "config.model.stylegan2.mixing=1.5 must be in [0, 1]"),
    ("model.stylegan2", "truncation", 2.0,
     "config.model.stylegan2.truncation=2.0 must be in [0, 1] (1.0: off)"),
    ("model.stylegan2", "mbstd_group", 3,
     "config.model.stylegan2.mbstd_group=3 must divide the discriminator's "
     "batch of 16"),
    ("gan", "pl_decay", 0.0, "config.gan.pl_decay=0.0 must be in (0, 1]"),
    ("gan", "g_regularizer_every", 0, "config.gan.g_regularizer_every"),
    ("data", "image_size", 12, "config.data.image_size=12"),
])
def test_config_errors_name_the_field(section, field, value, message):
  c = load_config("stylegan2", "small")
  node = c
  for part in section.split("."):
    node = node[part]
  node[field] = value
  with pytest.raises(ConfigError, match=None) as err:
    config_lib.validate(c)
  assert message in str(err.value)


def test_path_length_needs_a_style_generator():
  c = load_config("dcgan", "small")
  c.gan.g_regularizer = "path_length"
  with pytest.raises(ConfigError, match="needs a style-based generator"):
    config_lib.validate(c)


def test_conditional_stylegan2_validates_and_refuses_an_ac_head():
  """gan.conditional=True is accepted (the label mappings; tested by hand
  above); AC-GAN's auxiliary classifier is not (no such head)."""
  c = load_config("stylegan2", "small")
  c.gan.conditional = True
  config_lib.validate(c)
  c.gan.ac_weight = 1.0
  with pytest.raises(ConfigError, match="arch 'stylegan2' has no auxiliary "
                     "classifier"):
    config_lib.validate(c)
