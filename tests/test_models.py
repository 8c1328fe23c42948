"""Output shapes and ranges of every model at every resolution."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.models import dcgan, layers, mlp, upsample
from gen_jax.models import vae as vae_models

KEY = jax.random.key(0)


@pytest.mark.parametrize("resolution", dcgan.RESOLUTIONS)
@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan_generator_shape_and_range(resolution, channels):
  g = dcgan.Generator(resolution=resolution, channels=channels, width=8)
  z = jax.random.normal(KEY, (3, 16))
  variables = g.init(KEY, z, train=False)
  x, _ = g.apply(variables, z, train=True, mutable=["batch_stats"])
  assert x.shape == (3, resolution, resolution, channels)
  assert float(jnp.max(jnp.abs(x))) <= 1.0
  assert float(jnp.std(x)) > 0  # not a constant output


@pytest.mark.parametrize("resolution", dcgan.RESOLUTIONS)
@pytest.mark.parametrize("norm", layers.D_NORMS)
def test_dcgan_discriminator_shape(resolution, norm):
  d = dcgan.Discriminator(width=8, norm=norm)
  x = jax.random.normal(KEY, (3, resolution, resolution, 3))
  variables = d.init(KEY, x, train=False)
  logits, _ = d.apply(variables, x, train=True, mutable=["batch_stats"])
  assert logits.shape == (3,)
  assert np.all(np.isfinite(logits))


def test_dcgan_rejects_other_resolutions():
  with pytest.raises(ValueError, match="resolution 20 is not one of"):
    dcgan.num_doublings(20)


def test_dcgan_64_matches_the_pytorch_example_widths():
  g = dcgan.Generator(resolution=64, channels=3, width=64)
  variables = g.init(KEY, jnp.zeros((1, 100)), train=False)
  shapes = {k: v["kernel"].shape for k, v in variables["params"].items()
            if "kernel" in v}
  assert shapes["Dense_0"] == (100, 4 * 4 * 512)
  assert [shapes[f"up{i}"] for i in range(4)] == [
      (4, 4, 512, 256), (4, 4, 256, 128), (4, 4, 128, 64), (4, 4, 64, 3)]


@pytest.mark.parametrize("norm", layers.D_NORMS)
def test_mlp_gan_shapes(norm):
  g = mlp.Generator(out_dim=2, hidden=(16, 16))
  z = jax.random.normal(KEY, (5, 2))
  x, _ = g.apply(g.init(KEY, z, train=False), z, train=True,
                 mutable=["batch_stats"])
  assert x.shape == (5, 2)
  d = mlp.Discriminator(hidden=(16, 16), norm=norm)
  logits, _ = d.apply(d.init(KEY, x, train=False), x, train=True,
                      mutable=["batch_stats"])
  assert logits.shape == (5,)


def test_maxout_takes_the_max_over_each_unit_s_pieces():
  x = np.random.default_rng(0).normal(size=(4, 3 * 5)).astype(np.float32)
  expected = np.array([[max(row[p * 5 + u] for p in range(3))
                        for u in range(5)] for row in x])
  np.testing.assert_array_equal(np.asarray(mlp.maxout(jnp.asarray(x), 3)),
                                expected)


def test_maxout_critic_matches_a_numpy_forward_pass():
  # PacGAN's 2D critic: maxout layers of 200 units x 5 pieces (smaller here).
  d = mlp.Discriminator(hidden=(6, 4), maxout_pieces=3, init_std=0.5)
  x = jax.random.normal(KEY, (7, 2))
  variables = d.init(KEY, x, train=False)
  p = jax.tree.map(np.asarray, variables["params"])
  assert [p[f"Dense_{i}"]["kernel"].shape for i in range(3)] == \
      [(2, 18), (6, 12), (4, 1)]
  h = np.asarray(x)
  for i, units in enumerate((6, 4)):
    a = h @ p[f"Dense_{i}"]["kernel"] + p[f"Dense_{i}"]["bias"]
    h = a.reshape(len(a), 3, units).max(axis=1)
  expected = (h @ p["Dense_2"]["kernel"] + p["Dense_2"]["bias"])[:, 0]
  np.testing.assert_allclose(np.asarray(d.apply(variables, x)), expected,
                             rtol=1e-5, atol=1e-6)


def test_init_std_draws_normal_weights_of_that_scale():
  g = mlp.Generator(out_dim=2, hidden=(400, 400), init_std=0.02)
  z = jnp.zeros((1, 2))
  kernel = np.asarray(g.init(KEY, z, train=False)["params"]["Dense_1"]
                      ["kernel"])
  assert abs(kernel.mean()) < 1e-3
  assert kernel.std() == pytest.approx(0.02, rel=0.02)
  default = np.asarray(mlp.Generator(out_dim=2, hidden=(400, 400)).init(
      KEY, z, train=False)["params"]["Dense_1"]["kernel"])
  assert default.std() == pytest.approx(400 ** -0.5, rel=0.05)  # LeCun


def test_spectral_norm_bounds_the_layer_norm():
  d = mlp.Discriminator(hidden=(32,), norm="spectral")
  x = jax.random.normal(KEY, (64, 2))
  variables = d.init(KEY, x, train=False)
  # A few power iterations converge to the largest singular value.
  for _ in range(20):
    _, state = d.apply(variables, x, train=True, mutable=["batch_stats"])
    variables = {"params": variables["params"], **state}
  kernel = variables["params"]["Dense_0"]["kernel"]
  sigma = variables["batch_stats"]["SpectralNorm_0"]["Dense_0/kernel/sigma"]
  np.testing.assert_allclose(sigma, np.linalg.svd(kernel, compute_uv=False)[0],
                             rtol=1e-3)


def _kernels(params):
  return {name: np.asarray(p["kernel"]) for name, p in params.items()}


def test_spectral_norm_keeps_the_configured_initialisation():
  # Issue 18: flax's nn.SpectralNorm stored W / sigma at init (DCGAN Conv_0
  # std 0.144 instead of 0.02).
  x = jax.random.normal(KEY, (4, 16, 16, 1))
  d = dcgan.Discriminator(width=16, norm="spectral")
  kernels = _kernels(jax.jit(d.init)(KEY, x)["params"])
  assert set(kernels) == {"Conv_0", "Conv_1", "Dense_0"}
  for name, k in kernels.items():
    assert k.std() == pytest.approx(0.02, rel=0.15), name
    assert abs(k.mean()) < 0.005, name
  pts = jax.random.normal(KEY, (4, 2))
  d2 = mlp.Discriminator(hidden=(64, 64), norm="spectral", init_std=0.02)
  for name, k in _kernels(d2.init(KEY, pts, train=False)["params"]).items():
    assert k.std() == pytest.approx(0.02, rel=0.2), name


def _converge_power_iteration(d, variables, x, steps=100):
  step = jax.jit(lambda v: d.apply(v, x, train=True,
                                   mutable=["batch_stats"])[1])
  for _ in range(steps):
    variables = {"params": variables["params"], **step(variables)}
  return variables


def _leaky_relu(h):
  return np.where(h > 0, h, 0.2 * h)


def test_spectral_norm_forward_uses_kernels_over_their_top_singular_value():
  d = mlp.Discriminator(hidden=(16, 16), norm="spectral", init_std=0.02)
  x = jax.random.normal(KEY, (8, 2))
  variables = _converge_power_iteration(d, d.init(KEY, x, train=False), x)
  got = np.asarray(d.apply(variables, x, train=False))
  # NumPy forward with W / sigma_max(W) from an SVD.
  p = variables["params"]
  h = np.asarray(x, np.float64)
  for i, name in enumerate(["Dense_0", "Dense_1", "Dense_2"]):
    w = np.asarray(p[name]["kernel"], np.float64)
    h = h @ (w / np.linalg.svd(w, compute_uv=False)[0]) + p[name]["bias"]
    if i < 2:
      h = _leaky_relu(h)
  np.testing.assert_allclose(got, h[:, 0], rtol=1e-3, atol=1e-6)


def test_spectral_norm_dcgan_critic_equals_the_unnormalised_one_on_w_over_sigma():
  d = dcgan.Discriminator(width=4, norm="spectral")
  x = jax.random.normal(KEY, (3, 16, 16, 1))
  variables = _converge_power_iteration(d, jax.jit(d.init)(KEY, x), x)
  scaled = {}
  for name, p in variables["params"].items():
    k = np.asarray(p["kernel"], np.float64)
    sigma = np.linalg.svd(k.reshape(-1, k.shape[-1]), compute_uv=False)[0]
    scaled[name] = {**p, "kernel": jnp.asarray(k / sigma, jnp.float32)}
  plain = dcgan.Discriminator(width=4, norm="none")
  np.testing.assert_allclose(d.apply(variables, x, train=False),
                             plain.apply({"params": scaled}, x, train=False),
                             rtol=1e-3, atol=1e-6)


class _Norm(nn.Module):
  """The normalisation `norm` alone (an identity layer before it)."""
  norm: str

  @nn.compact
  def __call__(self, x):
    return layers.normalized(lambda v: v, x, self.norm, train=True)


def _numpy_layer_norm(x, axes, scale, bias, eps):
  x = np.asarray(x, np.float64)
  mean = x.mean(axis=axes, keepdims=True)
  var = x.var(axis=axes, keepdims=True)
  return (x - mean) / np.sqrt(var + eps) * scale + bias


@pytest.mark.parametrize("norm,axes,eps", [
    ("layer", (1, 2, 3), 1e-5),        # Gulrajani et al.'s code: C, H, W
    ("layer_channel", (3,), 1e-6)])    # flax nn.LayerNorm(): each position
def test_layer_norms_match_numpy(norm, axes, eps):
  rng = np.random.default_rng(0)
  x = (rng.normal(size=(3, 4, 5, 6)) * rng.uniform(0.5, 3, size=(3, 1, 1, 6))
       + rng.normal(size=(3, 1, 1, 1))).astype(np.float32)
  module = _Norm(norm)
  params = module.init(KEY, x)["params"]
  name, = params  # one LayerNorm
  scale, bias = rng.normal(size=6), rng.normal(size=6)
  assert params[name]["scale"].shape == (6,)  # per channel, as tflib's
  got = module.apply({"params": {name: {"scale": scale, "bias": bias}}}, x)
  np.testing.assert_allclose(got, _numpy_layer_norm(x, axes, scale, bias, eps),
                             rtol=1e-4, atol=1e-4)


def test_layer_norm_of_points_normalises_each_example_s_features():
  x = np.random.default_rng(1).normal(size=(4, 7)).astype(np.float32)
  module = _Norm("layer")
  got = module.apply(module.init(KEY, x), x)
  np.testing.assert_allclose(
      got, _numpy_layer_norm(x, (1,), np.ones(7), np.zeros(7), 1e-5),
      rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("arch", ["mlp", "conv"])
@pytest.mark.parametrize("likelihood,per_channel", [("bernoulli", 1),
                                                    ("gaussian", 2)])
@pytest.mark.parametrize("shape", [(16, 16, 1), (28, 28, 1), (32, 32, 3)])
def test_vae_shapes(arch, likelihood, per_channel, shape):
  if arch == "mlp":
    model = vae_models.VAE(vae_models.MLPEncoder(4, (32,)),
                           vae_models.MLPDecoder(shape, per_channel, (32,)))
  else:
    model = vae_models.VAE(vae_models.ConvEncoder(4, 8),
                           vae_models.ConvDecoder(shape, per_channel, 8))
  x = jax.random.uniform(KEY, (3, *shape))
  eps = jax.random.normal(KEY, (3, 4))
  variables = model.init(KEY, x, eps)
  out, mu, log_sigma = model.apply(variables, x, eps)
  assert out.shape == (3, *shape[:-1], shape[-1] * per_channel)
  assert mu.shape == log_sigma.shape == (3, 4)
  decoded = model.apply(variables, eps, method=vae_models.VAE.decode)
  assert decoded.shape == out.shape


@pytest.mark.parametrize("impl", upsample.UPSAMPLE_IMPLS)
def test_upsample_doubles_resolution(impl):
  layer = upsample.UpConv2x(5, impl)
  x = jax.random.normal(KEY, (2, 4, 6, 3))
  y = layer.apply(layer.init(KEY, x), x)
  assert y.shape == (2, 8, 12, 5)
