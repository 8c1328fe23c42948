"""DiffAugment's transforms and ADA's adaptive probability (augment.py), and
how the GAN trainer uses them."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import assert_bitwise_equal, load_config, read_checkpoint
from gen_jax import augment, config_lib, data, train
from gen_jax.errors import ConfigError
from gen_jax.trainers.gan import GanTrainer

POLICY = ("color", "translation", "cutout")


def _images(b=6, h=16, c=3, seed=0):
  return jnp.asarray(np.random.default_rng(seed).uniform(-1, 1, (b, h, h, c)),
                     jnp.float32)


def test_color_transforms_by_hand():
  x = _images(3)
  u = jnp.array([0.1, 0.5, 0.9])
  xn, un = np.asarray(x), np.asarray(u)[:, None, None, None]
  np.testing.assert_allclose(augment.brightness(x, u), xn + un - 0.5,
                             atol=1e-6)
  mc = xn.mean(3, keepdims=True)
  np.testing.assert_allclose(augment.saturation(x, u),
                             (xn - mc) * 2 * un + mc, atol=1e-6)
  m = xn.mean((1, 2, 3), keepdims=True)
  np.testing.assert_allclose(augment.contrast(x, u),
                             (xn - m) * (un + 0.5) + m, atol=1e-6)


def test_translation_by_hand():
  x = _images(2, 8, 1)
  out = np.asarray(augment.translate(x, jnp.array([[2, -1], [0, 3]])))
  xn = np.asarray(x)
  expected = np.zeros_like(xn)
  expected[0, :6, 1:] = xn[0, 2:, :7]   # out[i, j] = x[i + 2, j - 1]
  expected[1, :, :5] = xn[1, :, 3:]     # out[i, j] = x[i, j + 3]
  np.testing.assert_array_equal(out, expected)


def test_cutout_masks_the_right_fraction():
  h = 16
  size = augment.cutout_size(h)
  assert size == 8
  centres = jnp.array([[8, 8], [0, 0], [15, 4], [3, 12]])
  mask = np.asarray(augment.cutout_mask(centres, size, h, h))[..., 0]
  for m, (r, c) in zip(mask, np.asarray(centres)):
    rows = min(r - 4 + 8, h) - max(r - 4, 0)
    cols = min(c - 4 + 8, h) - max(c - 4, 0)
    assert (m == 0).sum() == rows * cols
    assert (m[max(r - 4, 0):r + 4, max(c - 4, 0):c + 4] == 0).all()
  # A centre inside: a quarter of the image (DiffAugment's ratio 0.5).
  assert (mask[0] == 0).mean() == 0.25
  # Drawn centres: the masked fraction of each image matches its centre.
  x = jnp.ones((64, h, h, 1))
  out = np.asarray(augment.augment(x, jax.random.key(1), ("cutout",)))
  fractions = (out == 0).mean((1, 2, 3))
  assert fractions.max() == 0.25 and fractions.min() > 0
  assert 0.1 < fractions.mean() < 0.25


def test_same_key_same_transforms_on_real_and_fake():
  """Real and fake go through the same transform family; with the same key
  they get the same parameters: the linear transforms (translation,
  cutout) of 2a are twice those of a, example by example."""
  a = _images(8, seed=2)
  key = jax.random.key(3)
  for policy in [("translation",), ("cutout",), ("translation", "cutout")]:
    real = augment.augment(a, key, policy)
    fake = augment.augment(2.0 * a, key, policy)
    np.testing.assert_allclose(fake, 2.0 * np.asarray(real), atol=1e-6)
    assert not np.allclose(real, a)
  # The whole policy with the same key: the same images.
  np.testing.assert_array_equal(augment.augment(a, key, POLICY),
                                augment.augment(a, key, POLICY))


def test_gradient_flows_to_the_fakes():
  x, w = _images(4, seed=4), _images(4, seed=5)
  key = jax.random.key(6)
  lin = ("translation", "cutout")
  # A linear map: <T x, w> = <x, T^T w>, and grad gives T^T w.
  grad = jax.grad(lambda v: jnp.sum(augment.augment(v, key, lin) * w))(x)
  np.testing.assert_allclose(
      float(jnp.sum(augment.augment(x, key, lin) * w)),
      float(jnp.sum(x * grad)), rtol=1e-5)
  full = jax.grad(lambda v: jnp.sum(augment.augment(v, key, POLICY) * w))(x)
  assert np.all(np.isfinite(full)) and np.abs(full).sum() > 0


def test_probability_applies_each_transform_to_that_share():
  x = _images(400, 8, 3, seed=7)  # 3 channels: saturation changes them
  key = jax.random.key(8)
  np.testing.assert_array_equal(augment.augment(x, key, ("cutout",), 0.0), x)
  changed = lambda p: float(np.mean(np.any(np.asarray(
      augment.augment(x, key, ("color",), p)) != np.asarray(x),
                                            axis=(1, 2, 3))))
  assert changed(1.0) == 1.0
  # Three colour transforms, each skipped with probability 0.7.
  assert abs(changed(0.3) - (1 - 0.7 ** 3)) < 0.07


def test_ada_p_moves_toward_the_target():
  aux = augment.ada_init()
  aux["ada_p"] = jnp.asarray(0.5)
  step_size = 4 * 64 / (500 * 1000)
  # Overfitting: the critic is sure of the reals (r_t = 1 > 0.6): p rises.
  over = augment.ada_accumulate(aux, jnp.asarray(1.0), 64)
  for step, p in [(0, 0.5), (3, 0.5 + step_size)]:
    out = augment.ada_update(over, jnp.asarray(step), 4, 0.6, 64, 500)
    assert float(out["ada_p"]) == pytest.approx(p, rel=1e-6)
  assert float(out["ada_count"]) == 0 and float(out["ada_sign_sum"]) == 0
  # Under the target (r_t = 0.2): p falls; it never leaves [0, 1].
  under = augment.ada_accumulate(aux, jnp.asarray(0.2), 64)
  out = augment.ada_update(under, jnp.asarray(7), 4, 0.6, 64, 500)
  assert float(out["ada_p"]) == pytest.approx(0.5 - step_size, rel=1e-6)
  zero = {**under, "ada_p": jnp.asarray(0.0)}
  assert float(augment.ada_update(zero, jnp.asarray(3), 4, 0.6, 64,
                                  500)["ada_p"]) == 0.0


def test_trainer_augments_real_and_fake_with_the_policy():
  c = load_config("dcgan", "small")
  c.gan.augment = "color,translation,cutout"
  c.gan.augment_p = 0.5
  trainer = GanTrainer(c, data.get_dataset(c.data).info)
  real, fake = _images(4, 16, 1, 9), _images(4, 16, 1, 10)
  key, step = jax.random.key(11), jnp.asarray(0)
  real_in, fake_in = trainer._d_inputs(real, fake, key, step)
  k_real, k_fake = jax.random.split(key)
  for x, k, out in [(real, k_real, real_in), (fake, k_fake, fake_in)]:
    np.testing.assert_array_equal(out, augment.augment(
        x, jax.random.fold_in(k, 7), POLICY, 0.5))


def _ada_config():
  c = load_config("dcgan", "small")
  c.gan.augment = "translation,cutout"
  c.gan.ada_target = 0.6
  c.gan.ada_interval = 1
  c.gan.ada_kimg = 0.1   # p moves 0.16 a step
  c.gan.augment_p = 0.5  # ADA's initial p: it moves either way from here
  c.train.num_steps = 4
  c.train.checkpoint_every = 2
  c.evals = ("samples",)
  return c


def test_ada_p_is_checkpointed_and_a_resume_keeps_it(tmp_path):
  """A run stopped at step 2 and resumed ends bitwise where an
  uninterrupted run ends, ADA's p included (it is not reset to 0)."""
  c = _ada_config()
  ref = train.train_and_evaluate(c, str(tmp_path / "ref"))
  assert "ada_p" in ref and "ada_rt" in ref
  c2 = _ada_config()
  c2.train.num_steps = 2
  train.train_and_evaluate(c2, str(tmp_path / "resumed"))
  at2 = read_checkpoint(tmp_path / "resumed", 2)
  # Two updates of 0.16 each, up or down (or 0.5 again: up then down).
  assert min(abs(at2["state/aux/ada_p"] - p) for p in
             (0.18, 0.5, 0.82)) < 1e-5
  train.train_and_evaluate(_ada_config(), str(tmp_path / "resumed"))
  final = read_checkpoint(tmp_path / "resumed", 4)
  reference = read_checkpoint(tmp_path / "ref", 4)
  assert_bitwise_equal({k: v for k, v in final.items() if k != "loop"},
                       {k: v for k, v in reference.items() if k != "loop"})
  # p went on moving after the resume, from where it was (within [0, 1]).
  assert min(abs(final["state/aux/ada_p"]
                 - np.clip(at2["state/aux/ada_p"] + d, 0, 1))
             for d in (-0.32, 0.0, 0.32)) < 1e-5


@pytest.mark.parametrize("change,message", [
    ({"augment": "color,flip"}, "config.gan.augment='flip' is not one of: "
     "color, cutout, translation"),
    ({"ada_target": 0.6}, "config.gan.ada_target=0.6 adapts the probability "
     "of config.gan.augment, which is empty"),
    ({"augment": "color", "augment_p": 0.0},
     "config.gan.augment_p=0.0 must be in (0, 1]"),
])
def test_augment_config_errors(change, message):
  c = load_config("dcgan", "small")
  for k, v in change.items():
    c.gan[k] = v
  with pytest.raises(ConfigError, match=re.escape(message)):
    config_lib.validate(c)
