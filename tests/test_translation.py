"""Pix2Pix and SRGAN: their objectives, the phases, resume across a phase
boundary, the frozen VGG content network, the held-out metrics and picture.
(Their end-to-end `small` runs are in test_train.py's smoke test; many seeds,
1 vs 8 devices and the non-finite guard are parameterised there too.)"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import assert_bitwise_equal, load_config, read_checkpoint
from gen_jax import train
from gen_jax.errors import ConfigError, DataError
from gen_jax.evaluators import translation as translation_pictures
from gen_jax.metrics import pixels
from gen_jax.models import vgg


def one_device(name, arg="small"):
  c = load_config(name, arg)
  c.mesh.num_devices = 1
  return c


def test_pix2pix_l1_only_update_is_adam_on_100_l1():
  """With adv_weight 0 the generator's update is Adam's step on
  100 * mean|G(source) - target| alone (same dropout draw)."""
  c = one_device("pix2pix", "l1_only,small")
  s = train.setup(c)
  t = s.trainer.inner
  state = s.init(s.key)
  batch = s.batch(s.stream())
  new, metrics = jax.jit(t.train_step)(state, batch)
  cond, target = batch["cond"][0], batch["x"][0]
  key = jax.random.fold_in(state.key, state.step)
  tx = t.networks["generator"].optimizer

  # One compiled program: run op by op, this reference took ~20 s of
  # dispatching and compiling each primitive, more than the step itself.
  @jax.jit
  def reference(params, model_state, opt_state, cond, target, key):
    def loss(p):
      fake, _ = t.generate(p, model_state, cond, key, train=True)
      return 100.0 * jnp.mean(jnp.abs(fake - target)), fake
    grads, fake = jax.grad(loss, has_aux=True)(params)
    upd, _ = tx.update(grads, opt_state, params)
    return grads, fake, optax.apply_updates(params, upd)
  grads, fake, expected = reference(
      state.params["generator"], state.model_state["generator"],
      state.opt_state["generator"], cond, target, key)
  # Biases before an instance norm have a zero gradient up to rounding,
  # where Adam's first step (lr * sign) is noise: compared elsewhere.
  for a, b, g in zip(jax.tree.leaves(expected),
                     jax.tree.leaves(new.params["generator"]),
                     jax.tree.leaves(grads)):
    keep = np.abs(np.asarray(g)) > 1e-5
    np.testing.assert_allclose(np.asarray(a)[keep], np.asarray(b)[keep],
                               rtol=1e-4, atol=1e-7)
  assert sum(int(np.sum(np.abs(np.asarray(g)) > 1e-5))
             for g in jax.tree.leaves(grads)) > 1000
  np.testing.assert_allclose(metrics["l1"], jnp.mean(jnp.abs(fake - target)),
                             rtol=1e-5)
  assert set(metrics) >= {"d_loss", "g_loss", "l1", "d_real", "d_fake"}


@pytest.mark.parametrize("name,dataset,message", [
    ("pix2pix", "digits", "needs an image-to-image dataset"),
    ("pix2pix", "digit_domains", "needs paired data"),
    ("pix2pix", "digit_superres", "same size"),
    ("srgan", "digit_edges", "upsamples by 2 or 4"),
])
def test_wrong_data_is_one_config_error(name, dataset, message):
  c = load_config(name, "small")
  c.data.name = dataset
  with pytest.raises(ConfigError, match=message):
    train.setup(c)


def test_bad_fields_are_one_line():
  c = load_config("pix2pix", "small")
  c.model.d_layers = 3  # 16 px: at most 2
  with pytest.raises(ConfigError, match="d_layers=3 is too deep"):
    train.setup(c)
  c = load_config("pix2pix", "small")
  c.model.norm = "layer"
  with pytest.raises(ConfigError, match="config.model.norm='layer' is not "
                     "one of: instance, batch"):
    train.setup(c)
  c = load_config("srgan", "small")
  c.srgan.vgg_layer = "conv6_1"
  with pytest.raises(ConfigError, match="vgg_layer='conv6_1'"):
    train.setup(c)


def test_phases_pick_the_step_by_step_count():
  c = one_device("srgan")
  c.srgan.pretrain_steps = 2
  s = train.setup(c)
  assert len(s.train_steps) == 2
  assert [s.trainer.phase_of(i) for i in range(4)] == [0, 0, 1, 1]
  assert s.step_for(1) is s.train_steps[0]
  assert s.step_for(2) is s.train_steps[1]
  state = s.init(s.key)
  stream = s.stream()
  d0 = jax.device_get(state.params["discriminator"])
  keys = None
  for i in range(3):
    state, m = s.step_for(i)(state, s.batch(stream))
    keys = keys or set(m)
    assert set(m) == keys  # the same metrics in every phase
    d = jax.device_get(state.params["discriminator"])
    moved = any(np.any(a != b) for a, b in zip(jax.tree.leaves(d0),
                                               jax.tree.leaves(d)))
    # The critic is frozen in pre-training, trained after the boundary.
    assert moved == (i >= 2), i
    assert (float(m["d_loss"]) != 0.0) == (i >= 2)
  # pretrain_steps 0: adversarial from the first step.
  c.srgan.pretrain_steps = 0
  assert train.setup(c).trainer.phase_of(0) == 1


def test_resume_across_the_phase_boundary_is_exact(tmp_path):
  """Stopped at the boundary (step 2 saved, step 3 the first adversarial
  one), resumed: bitwise the uninterrupted run's final checkpoint."""
  c = load_config("srgan", "small")
  c.srgan.pretrain_steps = 2
  c.train.update(num_steps=4, checkpoint_every=2, eval_every=4, log_every=1)
  whole, parts = str(tmp_path / "whole"), str(tmp_path / "parts")
  train.train_and_evaluate(c, whole)
  c.train.num_steps = 2
  train.train_and_evaluate(c, parts)
  c.train.num_steps = 4
  train.train_and_evaluate(c, parts)
  a, b = read_checkpoint(whole, 4), read_checkpoint(parts, 4)
  a.pop("loop"), b.pop("loop")
  assert_bitwise_equal(a, b)


def random_vgg(tmp_path, layer="conv1_2"):
  module = vgg.VGGFeatures(layer=layer)
  params = module.init(jax.random.key(3), jnp.zeros((1, 16, 16, 1)))["params"]
  path = str(tmp_path / "vgg19.npz")
  vgg.save_npz(path, params)
  return path, params


def test_vgg_content_loss_uses_the_frozen_file_weights(tmp_path, capsys):
  path, params = random_vgg(tmp_path)
  c = one_device("srgan")
  c.srgan.update(pretrain_steps=0, vgg_weights=path, vgg_layer="conv1_2")
  s = train.setup(c)
  assert "pixel MSE" not in capsys.readouterr().err
  t = s.trainer.inner
  assert t.networks["vgg"].optimizer is None
  state = s.init(s.key)
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(
      state.params["vgg"])):
    np.testing.assert_array_equal(a, b)
  batch = s.batch(s.stream())
  g_params, g_state = jax.device_get((state.params["generator"],
                                      state.model_state["generator"]))
  new, m = s.step_for(0)(state, batch)  # donates `state`
  # Frozen: the same weights after an update.
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(
      jax.device_get(new.params["vgg"]))):
    np.testing.assert_array_equal(a, b)
  # The logged content loss is the feature MSE of G's (training-mode)
  # output against the target, by the module applied on its own.
  fake, _ = t.generate(g_params, g_state, batch["cond"][0], None,
                       train=True)
  f = lambda x: vgg.VGGFeatures(layer="conv1_2").apply({"params": params}, x)
  expected = jnp.mean(jnp.square(f(fake) - f(batch["x"][0])))
  np.testing.assert_allclose(m["content"], expected, rtol=1e-4)
  assert float(m["content"]) != pytest.approx(float(m["pixel"]))


def test_missing_vgg_file_and_no_file(tmp_path, capsys):
  c = one_device("srgan")
  c.srgan.vgg_weights = str(tmp_path / "nope.npz")
  with pytest.raises(DataError, match="no such file"):
    train.setup(c)
  bad = tmp_path / "bad.npz"
  np.savez(bad, **{"conv1_1/kernel": np.zeros((3, 3, 3, 64))})
  c.srgan.vgg_weights = str(bad)
  with pytest.raises(DataError, match="have no 'conv1_1/bias'"):
    train.setup(c)
  c.srgan.vgg_weights = ""
  train.setup(c)
  err = capsys.readouterr().err
  assert err.count("the content loss is the pixel MSE") == 1


def test_held_out_metrics_match_a_direct_computation():
  c = one_device("srgan")
  s = train.setup(c)
  state = s.init(s.key)
  result = s.evaluation(state, s.trainer.eval_key(s.key), 0)
  split = s.evaluation.split()
  up = np.clip(np.asarray(pixels.bicubic(jnp.asarray(split["cond"]),
                                         (16, 16))), -1, 1)
  mse = np.mean((up.astype(np.float64) - split["x"]) ** 2, axis=(1, 2, 3))
  np.testing.assert_allclose(result.metrics["eval/bicubic_psnr"],
                             np.mean(10 * np.log10(4 / mse)), rtol=1e-4)
  out = np.asarray(s.trainer.translate(state, jnp.asarray(split["cond"]),
                                       None))
  np.testing.assert_allclose(result.metrics["eval/l1"],
                             np.mean(np.abs(out - split["x"])), rtol=1e-4)
  assert result.metrics["eval/bicubic_psnr"] > 20  # digits are smooth
  assert result.pictures["samples"].shape[-1] == 3


def test_triptych_rows_by_hand():
  cond = np.full((2, 2, 2, 1), 0.1, np.float32)
  x = np.full((2, 4, 4, 1), 0.2, np.float32)
  target = np.full((2, 4, 4, 1), 0.3, np.float32)
  rows, columns = translation_pictures.triptych_rows(cond, x, target)
  assert columns == 4 and rows.shape == (8, 4, 4, 1)
  np.testing.assert_allclose(rows[:, 0, 0, 0],
                             [0.1, 0.1, 0.2, 0.3] * 2, atol=1e-6)
  rows, columns = translation_pictures.triptych_rows(
      np.zeros((1, 4, 4, 1)), x[:1], np.zeros((1, 4, 4, 3)))
  assert columns == 3 and rows.shape == (3, 4, 4, 3)


def torchvision_vgg19_state(rng):
  """A random state dict with torchvision's vgg19 keys and (O, I, 3, 3)."""
  state, c_in = {}, 3
  for (name, width, _), index in zip(vgg.layers_up_to("conv5_4"),
                                     vgg.TORCHVISION_CONVS):
    state[f"features.{index}.weight"] = rng.normal(
        0, 0.1, (width, c_in, 3, 3)).astype(np.float32)
    state[f"features.{index}.bias"] = rng.normal(0, 0.1, width).astype(
        np.float32)
    c_in = width
  return state


def numpy_conv_relu(x, w_oihw, b):
  """'same' cross-correlation (torch's Conv2d, padding 1) then ReLU."""
  n, h, wd, _ = x.shape
  p = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  out = np.zeros((n, h, wd, w_oihw.shape[0]))
  for dy in range(3):
    for dx in range(3):
      out += np.einsum("nhwi,oi->nhwo", p[:, dy:dy + h, dx:dx + wd],
                       w_oihw[:, :, dy, dx])
  return np.maximum(out + b, 0.0)


def test_torchvision_vgg19_converts_to_the_same_convolutions(tmp_path):
  state = torchvision_vgg19_state(np.random.default_rng(0))
  path = str(tmp_path / "vgg19.npz")
  np.savez(path, **vgg.from_torchvision(state))
  params = vgg.load_npz(path, "conv1_2")
  x = np.random.default_rng(1).uniform(-1, 1, (2, 6, 6, 1)).astype(np.float32)
  got = vgg.VGGFeatures(layer="conv1_2").apply({"params": params}, x)
  h = (np.repeat((x + 1) / 2, 3, axis=-1) - vgg.MEAN) / vgg.STD
  for index in vgg.TORCHVISION_CONVS[:2]:
    h = numpy_conv_relu(h, state[f"features.{index}.weight"],
                        state[f"features.{index}.bias"])
  np.testing.assert_allclose(got, h, rtol=1e-4, atol=1e-5)
  del state["features.34.bias"]
  with pytest.raises(ValueError, match="features.34.weight/bias"):
    vgg.from_torchvision(state)
