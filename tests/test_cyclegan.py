"""CycleGAN: its terms by hand, the image pool against a reference loop, the
learning-rate curve, the translator, config errors, and an exact resume of
a run whose pools are in use."""

import os
import re
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import assert_bitwise_equal, load_config, read_checkpoint
from gen_jax import config_lib, data, image_pool, objectives, schedules, train
from gen_jax.errors import ConfigError
from gen_jax.models.resnet_translator import ResnetTranslator, reflect_pad
from gen_jax.trainers import cyclegan


def trainer_of(config):
  config_lib.validate(config)
  return cyclegan.CycleGanTrainer(config, data.get_dataset(config.data).info)


# -- the terms ------------------------------------------------------------------

def test_generator_and_discriminator_terms_by_hand():
  rng = np.random.default_rng(0)
  img = lambda: jnp.asarray(rng.uniform(-1, 1, (2, 4, 4, 1)), jnp.float32)
  real_a, real_b, cyc_a, cyc_b, same_a, same_b = (img() for _ in range(6))
  fake_a_logits = jnp.array([[0.5], [-1.0]])
  fake_b_logits = jnp.array([[2.0], [0.0]])
  c = load_config("cyclegan", "small")
  c.cyclegan.identity_weight = 0.5  # the paper's (digit_domains: 0)
  trainer = trainer_of(c)
  inputs = {"real_a": real_a, "real_b": real_b, "cycle_a": cyc_a,
            "cycle_b": cyc_b, "same_a": same_a, "same_b": same_b,
            "fake_a_logits": fake_a_logits, "fake_b_logits": fake_b_logits}
  total, terms = objectives.objective(trainer.terms, cyclegan.GENERATORS,
                                      inputs, jnp.asarray(0))
  mae = lambda p, q: np.mean(np.abs(np.asarray(p) - np.asarray(q)))
  # Least squares, the project's halved form: 0.5 * mean((D - 1)^2).
  assert float(terms["g_ab_adv"]) == pytest.approx(0.5 * (1 + 1) / 2)
  assert float(terms["g_ba_adv"]) == pytest.approx(0.5 * (0.25 + 4) / 2)
  assert float(terms["cycle_a"]) == pytest.approx(mae(cyc_a, real_a), 1e-6)
  assert float(terms["cycle_b"]) == pytest.approx(mae(cyc_b, real_b), 1e-6)
  assert float(terms["identity_a"]) == pytest.approx(mae(same_a, real_a),
                                                     1e-6)
  assert float(terms["identity_b"]) == pytest.approx(mae(same_b, real_b),
                                                     1e-6)
  # The paper's weights: adversarial E[(D-1)^2] (2 x the halved loss),
  # lambda = 10 on the cycles, 0.5 lambda on the identities.
  expected = (np.mean((np.array([2.0, 0.0]) - 1) ** 2)
              + np.mean((np.array([0.5, -1.0]) - 1) ** 2)
              + 10 * (mae(cyc_a, real_a) + mae(cyc_b, real_b))
              + 5 * (mae(same_a, real_a) + mae(same_b, real_b)))
  assert float(total) == pytest.approx(expected, rel=1e-6)

  d_inputs = {"real_logits": jnp.array([1.5, 0.0]),
              "fake_logits": jnp.array([0.5, -0.5])}
  for d in (cyclegan.D_A, cyclegan.D_B):
    d_total, d_terms = objectives.objective(trainer.terms, d, d_inputs,
                                            jnp.asarray(0))
    # 0.5 * (mean((real - 1)^2) + mean(fake^2)), the released code's.
    assert float(d_total) == pytest.approx(
        0.5 * ((0.25 + 1) / 2 + (0.25 + 0.25) / 2))
    assert list(d_terms) == [f"{d}_loss"]


def test_identity_weight_zero_drops_the_identity_terms():
  c = load_config("cyclegan", "small")
  assert c.cyclegan.identity_weight == 0.0  # digit_domains: see its config
  names = [t.name for t in trainer_of(c).terms]
  assert "identity_a" not in names and "cycle_a" in names
  c.cyclegan.identity_weight = 0.5
  assert "identity_a" in [t.name for t in trainer_of(c).terms]


# -- the image pool ---------------------------------------------------------------

def reference_pool(stored, count, images, swap, slot):
  """The released code's loop (util/image_pool.py), with the draws given."""
  stored, out = stored.copy(), []
  for image, s, k in zip(images, swap, slot):
    if count < len(stored):
      stored[count] = image
      count += 1
      out.append(image)
    elif s:
      out.append(stored[k].copy())
      stored[k] = image
    else:
      out.append(image)
  return stored, count, np.stack(out)


def draws(key, b, size):
  """The pool's own draws for one query (image_pool.query's)."""
  k_swap, k_slot = jax.random.split(key)
  return (np.asarray(jax.random.uniform(k_swap, (b,)) > 0.5),
          np.asarray(jax.random.randint(k_slot, (b,), 0, size)))


def test_pool_fills_then_swaps_like_the_released_loop():
  size, b = 5, 3
  pool = image_pool.init(size, (2, 2, 1))
  query = jax.jit(image_pool.query)
  rng = np.random.default_rng(0)
  ref_stored, ref_count = np.zeros((size, 2, 2, 1), np.float32), 0
  returned_stored = returned_new = 0
  for i in range(40):
    # Distinct values: every image is identifiable.
    images = (100 * i + np.arange(b)[:, None, None, None]
              + rng.uniform(0, 0.5, (b, 2, 2, 1))).astype(np.float32)
    key = jax.random.key(i)
    before = np.asarray(pool["images"])
    pool, out = query(pool, jnp.asarray(images), key)
    out = np.asarray(out)
    ref_stored, ref_count, ref_out = reference_pool(
        ref_stored, ref_count, images, *draws(key, b, size))
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(np.asarray(pool["images"]), ref_stored)
    assert int(pool["count"]) == ref_count == min(size, (i + 1) * b)
    if i == 0:  # the first fakes are returned as they are, and stored
      np.testing.assert_array_equal(out, images)
      np.testing.assert_array_equal(np.asarray(pool["images"])[:b], images)
    if i >= 2:  # full: each output is new, or was stored before it (in the
      # pool before the query, or put there by an earlier image of the batch)
      for j, (o, new) in enumerate(zip(out, images)):
        if np.array_equal(o, new):
          returned_new += 1
        else:
          assert any(np.array_equal(o, s) for s in [*before, *images[:j]])
          returned_stored += 1
          # ... and the new image took its place.
          assert any(np.array_equal(new, s) for s in np.asarray(
              pool["images"])) or any(np.array_equal(new, s)
                                      for s in out[j + 1:])
  # With probability 1/2 each (114 draws): a mix of both.
  assert 35 < returned_stored < 80 and returned_new > 35


def test_pool_of_size_zero_is_off():
  pool = image_pool.init(0, (2, 2, 1))
  x = jnp.ones((3, 2, 2, 1))
  _, out = image_pool.query(pool, x, jax.random.key(0))
  assert out is x


# -- the learning rate -------------------------------------------------------------

def test_rate_is_held_then_decays_linearly_to_zero():
  lr, n = 2e-4, 10
  schedule = schedules.DECAYS.get("constant_then_linear")(lr, n)
  got = [float(schedule(t)) for t in range(n + 2)]
  expected = [lr] * 5 + [lr * (1 - k / 5) for k in range(5)] + [0.0, 0.0]
  np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-12)
  assert load_config("cyclegan").optim.decay == "constant_then_linear"


# -- the translator ----------------------------------------------------------------

@pytest.mark.parametrize("size,n_down,channels", [(16, 2, 3)])
def test_translator_keeps_the_size(size, n_down, channels):
  m = ResnetTranslator(channels=channels, width=4, n_down=n_down, n_blocks=1)
  x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (2, size, size, 1)),
                  jnp.float32)
  variables = jax.jit(m.init)(jax.random.key(0), x)
  y = jax.jit(m.apply)(variables, x)
  assert y.shape == (2, size, size, channels)
  assert float(jnp.max(jnp.abs(y))) <= 1.0  # tanh
  # Widths c7s1-k, d2k, ..., R(2^n k), u..., c7s1-C.
  p = variables["params"]
  assert p["Conv_0"]["kernel"].shape == (7, 7, 1, 4)
  assert p["ResnetBlock_0"]["Conv_0"]["kernel"].shape[-1] == 4 * 2 ** n_down


def test_reflection_padding_mirrors_without_the_edge():
  x = jnp.arange(3.0).reshape(1, 1, 3, 1) * jnp.ones((1, 3, 1, 1))
  row = np.asarray(reflect_pad(x, 2))[0, 2, :, 0]
  np.testing.assert_array_equal(row, [2, 1, 0, 1, 2, 1, 0])


# -- config errors -----------------------------------------------------------------

@pytest.mark.parametrize("change,message", [
    ({"model.d_norm": "layer"}, "config.model.d_norm='layer' is not one of: "
     "instance, batch, none"),
    ({"cyclegan.cycle_weight": -1.0}, "config.cyclegan.cycle_weight=-1.0 "
     "must be >= 0"),
    ({"cyclegan.loss": "l2"}, "config.cyclegan.loss='l2' is not one of"),
    ({"model.d_layers": 3}, "config.model.d_layers=3 is too many for 16 px"),
    ({"model.g_down": 4}, "config.model.g_down=4: 16x16 images must be "
     "divisible by 2^g_down with at least 2 px left"),
    ({"data.name": "digits"}, "config.trainer='cyclegan' needs an "
     "image-to-image dataset"),
])
def test_config_errors_are_one_line(change, message, tmp_path):
  c = load_config("cyclegan", "small")
  for path, value in change.items():
    section, field = path.split(".")
    c[section][field] = value
  with pytest.raises(ConfigError, match=re.escape(message)):
    train.setup(c)


def test_paper_settings_for_horse2zebra():
  c = load_config("cyclegan", "horse2zebra")
  assert c.data.name == "cycle_gan:horse2zebra"
  assert (c.data.image_size, c.data.batch_size) == (256, 1)
  assert (c.model.g_blocks, c.model.d_layers, c.model.d_norm) == (
      9, 3, "instance")
  assert c.cyclegan.pool_size == 50 and c.cyclegan.cycle_weight == 10
  assert c.cyclegan.identity_weight == 0.5
  assert c.train.num_steps == 200 * 1334
  assert (c.optim.g_lr, c.optim.g_b1) == (2e-4, 0.5)


# -- content kept: the label metric ---------------------------------------------

def test_label_metric_reads_the_digit_of_a_perfect_translation():
  """`cycle_labels` on an oracle of `digit_domains:invert` (inversion is
  negation in [-1, 1]): the digits read back as their sources' labels as
  often as real images' do; labels shifted by one read as wrong."""
  from gen_jax.evaluators import cycle
  s = train.setup(load_config("cyclegan", "digit_domains:invert,small"))
  ref = s.evaluation.reference()
  oracle = {"cond": ref["cond"], "x": -ref["cond"], "label": ref["cond_label"],
            "b": ref["x"], "b_to_a": -ref["x"], "b_label": ref["label"]}
  (m,), pictures = cycle.cycle_labels(s.evaluation.ctx, [oracle])
  assert not pictures
  assert m["label_real_a"] > 0.9 and m["label_real_b"] > 0.9
  assert m["label_ab"] > 0.9 and m["label_ba"] > 0.9
  assert m["label_untranslated"] < 0.3  # B's classifier on A images
  shifted = {**oracle, "label": (oracle["label"] + 1) % 10,
             "b_label": (oracle["b_label"] + 1) % 10}
  (m,), _ = cycle.cycle_labels(s.evaluation.ctx, [shifted])
  assert m["label_ab"] < 0.1 and m["label_ba"] < 0.1


# -- a run ----------------------------------------------------------------------

def test_run_resumes_bitwise_with_its_pools(tmp_path):
  """4 steps of batch 16 with pools of 8 (`small`): full and swapping from
  the first step. Resuming from step 2 gives step 4's checkpoint bit for
  bit (pools, both generators, both critics, all four Adam states, key,
  data position)."""
  c = load_config("cyclegan", "small")
  c.train.keep_checkpoints = 5
  final = train.train_and_evaluate(c, str(tmp_path))
  for k in ("eval/cycle_a", "eval/cycle_b", "eval/fid_ab", "eval/fid_ba",
            "eval/fid_untranslated", "eval/label_ab", "eval/label_ba",
            "cycle_a", "d_b_loss"):
    assert np.isfinite(final[k]), k
  picture = tmp_path / "samples" / "cycles_step_0000004.png"
  from PIL import Image
  grid = np.asarray(Image.open(picture))
  # 8 rows of A, A->B, A->B->A, B, B->A, B->A->B; 16 px at scale 4.
  assert grid.shape[:2] == (((16 + 1) * 8 + 1) * 4, ((16 + 1) * 6 + 1) * 4)
  at2, at4 = read_checkpoint(tmp_path, 2), read_checkpoint(tmp_path, 4)
  assert at2["state/aux/pool_a/count"] == at4["state/aux/pool_b/count"] == 8
  for pool in ("pool_a", "pool_b"):  # steps 3 and 4 swapped some fakes in
    assert not np.array_equal(at2[f"state/aux/{pool}/images"],
                              at4[f"state/aux/{pool}/images"])
  shutil.rmtree(tmp_path / "checkpoints" / "4")
  c.evals = ("held_out",)  # changeable on resume; saves compiling the rest
  train.train_and_evaluate(c, str(tmp_path))
  assert_bitwise_equal(read_checkpoint(tmp_path, 4), at4)
  assert os.path.exists(picture)
