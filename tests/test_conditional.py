"""Class-conditional GANs: conditional batch norm, the projection critic,
AC-GAN's loss, and a conditional run's outputs."""

import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config
from gen_jax import config_lib, data, objectives, train
from gen_jax.errors import ConfigError
from gen_jax.models import dcgan
from gen_jax.models.layers import ConditionalBatchNorm
from gen_jax.trainers.gan import GanTrainer


def test_conditional_batch_norm_scales_and_shifts_per_class():
  x = jnp.asarray(np.random.default_rng(0).normal(size=(6, 2, 2, 3)),
                  jnp.float32)
  labels = jnp.array([0, 1, 2, 0, 1, 2])
  bn = ConditionalBatchNorm(num_classes=3)
  variables = bn.init(jax.random.key(0), x, labels, train=True)
  gamma = np.arange(9, dtype=np.float32).reshape(3, 3) + 1.0
  beta = -np.arange(9, dtype=np.float32).reshape(3, 3)
  params = {"gamma": {"embedding": gamma}, "beta": {"embedding": beta}}
  y, _ = bn.apply({"params": params, **{k: v for k, v in variables.items()
                                        if k != "params"}},
                  x, labels, train=True, mutable=["batch_stats"])
  xn = np.asarray(x)
  mean, var = xn.mean((0, 1, 2)), xn.var((0, 1, 2))
  normed = (xn - mean) / np.sqrt(var + 1e-5)
  expected = (normed * gamma[np.asarray(labels)][:, None, None]
              + beta[np.asarray(labels)][:, None, None])
  np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)


def test_projection_logits_by_hand():
  """logit(x, y) = w . phi(x) + b + embed[y] . phi(x), with phi(x) the
  flattened last feature map (here LeakyReLU of the last convolution)."""
  d = dcgan.Discriminator(width=4, norm="none", num_classes=3,
                          projection=True)
  x = jnp.asarray(np.random.default_rng(1).uniform(-1, 1, (5, 16, 16, 1)),
                  jnp.float32)
  y = jnp.array([0, 1, 2, 1, 0])
  variables = d.init(jax.random.key(2), x, y, train=False)
  params = jax.tree.map(np.asarray, variables["params"])
  # Non-zero embeddings and bias (the init is small and the bias 0).
  rng = np.random.default_rng(3)
  params["projection"]["embedding"] = rng.normal(
      size=params["projection"]["embedding"].shape).astype(np.float32)
  params["Dense_0"]["bias"] = np.array([0.3], np.float32)
  logits, inter = d.apply({"params": params}, x, y, train=False,
                          capture_intermediates=True)
  last_conv = np.asarray(inter["intermediates"]["Conv_1"]["__call__"][0])
  phi = np.where(last_conv > 0, last_conv, 0.2 * last_conv).reshape(5, -1)
  w, b = params["Dense_0"]["kernel"][:, 0], params["Dense_0"]["bias"][0]
  embed = params["projection"]["embedding"][np.asarray(y)]
  expected = phi @ w + b + np.sum(embed * phi, axis=1)
  np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)
  # The label changes the logit only through the projection.
  other, _ = d.apply({"params": params}, x, (y + 1) % 3, train=False,
                     capture_intermediates=True)
  e2 = params["projection"]["embedding"][(np.asarray(y) + 1) % 3]
  np.testing.assert_allclose(np.asarray(other) - np.asarray(logits),
                             np.sum((e2 - embed) * phi, axis=1),
                             rtol=1e-4, atol=1e-4)


def _log_softmax(z):
  z = z - z.max(1, keepdims=True)
  return z - np.log(np.exp(z).sum(1, keepdims=True))


def test_ac_gan_loss_on_fixed_logits():
  real_cls = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]], np.float32)
  fake_cls = np.array([[0.0, 3.0, 0.0], [1.0, -2.0, 0.5]], np.float32)
  real_y, fake_y = np.array([0, 2]), np.array([1, 1])
  ce = lambda z, y: -np.mean(_log_softmax(z)[np.arange(len(y)), y])
  assert float(objectives.class_cross_entropy(
      jnp.asarray(real_cls), jnp.asarray(real_y))) == pytest.approx(
          ce(real_cls, real_y), rel=1e-6)

  c = load_config("cgan", "small")
  c.gan.ac_weight = 0.5
  c.model.d_cond = "none"
  trainer = GanTrainer(c, data.get_dataset(c.data).info)
  inputs = {"real_class_logits": jnp.asarray(real_cls),
            "fake_class_logits": jnp.asarray(fake_cls),
            "real_label": jnp.asarray(real_y),
            "fake_label": jnp.asarray(fake_y),
            "real_logits": jnp.zeros(2), "fake_logits": jnp.zeros(2),
            "critic": None, "real": None, "fake": None, "key": None,
            "params": {}}
  d_total, d_terms = objectives.objective(trainer.terms, "discriminator",
                                          inputs, jnp.asarray(0))
  g_total, g_terms = objectives.objective(trainer.terms, "generator",
                                          inputs, jnp.asarray(0))
  # Odena et al.: D minimises L_C on real and fake, G minimises L_C on fake.
  assert float(d_terms["d_ac"]) == pytest.approx(
      ce(real_cls, real_y) + ce(fake_cls, fake_y), rel=1e-6)
  assert float(g_terms["g_ac"]) == pytest.approx(ce(fake_cls, fake_y),
                                                 rel=1e-6)
  # Non-saturating loss at logits 0 is 2 log 2 (D) and log 2 (G).
  assert float(d_total) == pytest.approx(
      2 * np.log(2) + 0.5 * float(d_terms["d_ac"]), rel=1e-6)
  assert float(g_total) == pytest.approx(
      np.log(2) + 0.5 * float(g_terms["g_ac"]), rel=1e-6)


@pytest.mark.parametrize("change,message", [
    ({"gan.pack": 2}, "config.gan.pack=2 cannot be combined with "
     "config.gan.conditional=True"),
    ({"model.d_cond": "concat"}, "config.model.d_cond='concat' is not one "
     "of: projection, none"),
])
def test_conditional_config_errors(change, message):
  c = load_config("cgan", "small")
  for path, value in change.items():
    section, field = path.split(".")
    c[section][field] = value
  with pytest.raises(ConfigError, match=re.escape(message)):
    config_lib.validate(c)


def test_ac_weight_needs_labels():
  c = load_config("dcgan", "small")
  c.gan.ac_weight = 1.0
  with pytest.raises(ConfigError, match="set config.gan.conditional=True"):
    config_lib.validate(c)


def test_unconditional_architecture_refuses_labels():
  c = load_config("gan_2d", "ring,small")
  c.gan.conditional = True
  with pytest.raises(ConfigError, match="'mlp' is unconditional; "
                     "conditional architectures: dcgan"):
    config_lib.validate(c)


def test_dataset_without_labels_is_refused_before_compiling(tmp_path):
  c = load_config("cgan", "stacked_digits,small")
  with pytest.raises(ConfigError, match="needs a dataset with one class "
                     "label per example; 'stacked_digits' has none"):
    train.train_and_evaluate(c, str(tmp_path))
  assert not os.listdir(tmp_path)


def test_conditional_run_writes_labelled_samples(tmp_path):
  c = load_config("cgan", "small")
  c.gan.ac_weight = 1.0          # projection and AC-GAN together
  c.model.minibatch_std = True   # works with labels
  c.train.save_eval_samples = True
  c.train.num_eval_samples = 100
  final = train.train_and_evaluate(c, str(tmp_path))
  for k in ("d_ac", "g_ac", "eval/class_accuracy", "eval/intra_fid",
            "eval/fid"):
    assert k in final and np.isfinite(final[k]), k
  saved = np.load(tmp_path / "samples" / "step_0000004.npz")
  assert saved["x"].shape == (100, 16, 16, 1)
  # Labels cycle through the classes: 10 of each.
  np.testing.assert_array_equal(np.bincount(saved["label"]), [10] * 10)
  lo, hi = c.data.value_range
  assert saved["x"].min() >= lo and saved["x"].max() <= hi
  # The grid: one row of 8 per class, each 16 px at scale 8 plus padding.
  from PIL import Image
  grid = np.asarray(Image.open(tmp_path / "samples" / "step_0000004.png"))
  assert grid.shape[0] == 10 * (16 + 1) * 8 + 8


def test_class_accuracy_of_real_digits_with_their_labels():
  """The evaluator on held-out digits: with their own labels it gives the
  classifier's accuracy; with shuffled labels, chance."""
  from gen_jax import evaluators
  c = load_config("cgan", "small")
  s = train.setup(c)
  ref = s.evaluation.reference()
  ctx = s.evaluation.ctx
  fn = evaluators.EVALUATORS.get("class_accuracy").fn
  right = fn(ctx, [{"x": ref["x"], "label": ref["label"]}])[0][0]
  wrong = fn(ctx, [{"x": ref["x"], "label": (ref["label"] + 3) % 10}])[0][0]
  assert right["class_accuracy"] > 0.85
  assert wrong["class_accuracy"] < 0.2


def test_compare_gan_dragan_needs_images_in_the_unit_range(tmp_path):
  c = load_config("gan_2d", "ring,small")
  c.gan.penalty = "dragan_compare_gan"
  with pytest.raises(ConfigError, match="clips to images in \\[-1, 1\\]; "
                     "'ring' is points data"):
    train.train_and_evaluate(c, str(tmp_path))
