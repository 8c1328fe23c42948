"""Image-to-image datasets (the `cond` contract) and the PatchGAN critic."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax import data
from gen_jax.data import embedded, translation
from gen_jax.errors import DataError
from gen_jax.models import patchgan
from test_embedded_data import data_config, stream


@pytest.mark.parametrize("name,size,x_shape,cond_shape,paired", [
    ("digit_edges", 16, (16, 16, 1), (16, 16, 1), True),
    ("digit_thicken", 16, (16, 16, 1), (16, 16, 1), True),
    ("digit_superres", 16, (16, 16, 1), (8, 8, 1), True),
    ("digit_superres:4", 32, (32, 32, 1), (8, 8, 1), True),
    ("digit_domains", 16, (16, 16, 1), (16, 16, 1), False),
    ("digit_domains:invert", 16, (16, 16, 1), (16, 16, 1), False)])
def test_translation_batches_follow_the_contract(name, size, x_shape,
                                                 cond_shape, paired):
  ds = data.get_dataset(data_config(name, image_size=size))
  info = ds.info
  assert info.example_shape == x_shape
  assert info.extras["cond_shape"] == cond_shape
  assert info.extras["paired"] is paired
  b = next(stream(ds, local=8))
  assert set(b) == {"x", "cond"}
  assert b["x"].shape == (8, *x_shape) and b["cond"].shape == (8, *cond_shape)
  for v in b.values():
    assert v.dtype == np.float32 and v.min() >= -1 and v.max() <= 1
  ev = next(ds.eval_batches(local_batch_size=8, process_index=0,
                            process_count=1))
  # Unpaired digits carry held-out labels for the label metric.
  labels = set() if paired else {"label", "cond_label"}
  assert set(ev) == {"x", "cond", "mask"} | labels
  assert ev["cond"].shape == (8, *cond_shape)


def test_paired_tasks_are_functions_of_the_same_digit():
  cfg = data_config("digit_edges")
  digits = embedded._digit_split(16)[0][0]          # [0, 1]
  ds = data.get_dataset(cfg)
  train = ds.arrays("train")
  np.testing.assert_allclose(train["x"], 2 * digits - 1, atol=1e-6)
  np.testing.assert_allclose(train["cond"],
                             2 * translation.edges(digits) - 1, atol=1e-6)
  # Edges are binary, mark the stroke's outline and vary per digit.
  e = translation.edges(digits[:50])
  assert set(np.unique(e)) == {0.0, 1.0}
  assert 0.05 < e.mean() < 0.6
  sr = data.get_dataset(data_config("digit_superres")).arrays("train")
  # The low-res input is a 2x downsampling: its mean matches the target's.
  np.testing.assert_allclose(sr["cond"].mean((1, 2, 3)),
                             sr["x"].mean((1, 2, 3)), atol=0.05)


def test_thicken_invert_by_hand():
  im = np.zeros((1, 5, 5, 1), np.float32)
  im[0, 2, 2, 0] = 1.0
  out = translation.thicken_invert(im)[0, ..., 0]
  expected = np.ones((5, 5), np.float32)
  expected[1:4, 1:4] = 0.0  # the 3x3 dilation of one pixel, inverted
  np.testing.assert_array_equal(out, expected)


def test_digit_domains_are_unpaired_and_disjoint():
  ds = data.get_dataset(data_config("digit_domains"))  # thicken
  train = ds.arrays("train")
  digits = embedded._digit_split(16)[0][0]
  b_sources = 1 - (train["x"] + 1) / 2   # dilated digits of domain B
  a = (train["cond"] + 1) / 2
  # No A digit is the undilated source of a B image: the halves are disjoint.
  a_rows = {r.tobytes() for r in np.round(a, 5)}
  dilated_a = translation.thicken_invert(a)
  assert not {r.tobytes() for r in np.round(dilated_a, 5)} & {
      r.tobytes() for r in np.round(1 - b_sources, 5)}
  assert len(a) + len(train["x"]) <= len(digits)
  assert len(a_rows) > 0.9 * len(a)
  # x and cond are shuffled independently, each a permutation per epoch.
  s = stream(ds, local=16)
  batches = [next(s) for _ in range(len(a) // 16)]
  xs = np.concatenate([b["x"] for b in batches])
  conds = np.concatenate([b["cond"] for b in batches])
  assert len({r.tobytes() for r in xs}) == len(xs)
  x_index = {r.tobytes(): i for i, r in enumerate(train["x"])}
  c_index = {r.tobytes(): i for i, r in enumerate(train["cond"])}
  xi = np.array([x_index[r.tobytes()] for r in xs])
  ci = np.array([c_index[r.tobytes()] for r in conds])
  assert np.mean(xi == ci) < 0.1


def test_unpaired_stream_resumes_and_shards():
  ds = data.get_dataset(data_config("digit_domains"))
  s = stream(ds, local=16)
  for _ in range(3):
    next(s)
  state = s.get_state()
  expected = next(s)
  t = stream(ds, local=16)
  t.set_state(state)
  got = next(t)
  for k in expected:
    np.testing.assert_array_equal(expected[k], got[k])
  whole = next(stream(ds, local=16))
  parts = [next(stream(ds, local=8, index=i, count=2)) for i in range(2)]
  for k in whole:
    np.testing.assert_array_equal(whole[k],
                                  np.concatenate([p[k] for p in parts]))


def test_digit_domains_styles_and_labels():
  digits, labels = embedded._digit_split(16)[1]  # held out
  ds = data.get_dataset(data_config("digit_domains:invert"))
  ev = ds.arrays("test")
  assert ds.info.extras["classifier_b"] == "digits_inverted"
  # Each image is its label's digit: B inverted, A as it is.
  key = lambda im: (np.round(im, 5) + 0.0).tobytes()  # + 0.0: no -0.0
  index = {key(2 * d - 1): y for d, y in zip(digits, labels)}
  for a, y in zip(ev["cond"], ev["cond_label"]):
    assert index[key(a)] == y
  for b, y in zip(ev["x"], ev["label"]):
    assert index[key(-b)] == y
  thick = data.get_dataset(data_config("digit_domains"))
  assert thick.info.extras["classifier_b"] == "digits_thickened"
  np.testing.assert_array_equal(thick.arrays("test")["cond_label"],
                                ev["cond_label"])  # the same split
  with pytest.raises(DataError, match="must be one of thicken, invert"):
    data.get_dataset(data_config("digit_domains:rotate"))


def test_bad_superres_scale_is_one_line():
  with pytest.raises(DataError, match="must be one of 2, 4"):
    data.get_dataset(data_config("digit_superres:3"))
  with pytest.raises(DataError, match="image_size=12 must be a multiple"):
    data.get_dataset(data_config("digit_superres:4", image_size=12))
  with pytest.raises(DataError, match="image_size=15 must be a multiple"):
    data.get_dataset(data_config("digit_superres", image_size=15))


@pytest.mark.parametrize("size,n_layers,norm", [
    (16, 2, "instance"), (16, 1, "batch"), (32, 3, "none")])
def test_patchgan_shapes(size, n_layers, norm):
  d = patchgan.PatchGAN(width=8, n_layers=n_layers, norm=norm)
  x = jnp.ones((2, size, size, 1))
  cond = jnp.zeros((2, size, size, 3))
  variables = d.init(jax.random.key(0), x, cond, train=False)
  out, _ = d.apply(variables, x, cond, train=True, mutable=["batch_stats"])
  h = patchgan.output_size(size, n_layers)
  assert out.shape == (2, h, h, 1)
  # The first convolution sees x and cond: 1 + 3 input channels.
  assert variables["params"]["Conv_0"]["kernel"].shape == (4, 4, 4, 8)
  assert ("batch_stats" in variables) == (norm == "batch")


def test_patchgan_receptive_field_is_70_for_three_layers():
  assert patchgan.receptive_field(3) == 70
  # Empirically: the logit at the centre depends on a 34 px window (n=2).
  d = patchgan.PatchGAN(width=4, n_layers=2, norm="none")
  x = jnp.zeros((1, 64, 64, 1))
  v = d.init(jax.random.key(0), x, train=False)
  g = jax.grad(lambda x: d.apply(v, x, train=False)[0, 7, 7, 0])(x)
  rows = np.nonzero(np.abs(np.asarray(g[0, :, :, 0])).sum(1))[0]
  assert rows.max() - rows.min() + 1 <= patchgan.receptive_field(2) == 34
  assert rows.max() - rows.min() + 1 >= 30


def test_patchgan_refuses_too_small_images():
  d = patchgan.PatchGAN(width=4, n_layers=3)
  with pytest.raises(ValueError, match="at least 24 px"):
    d.init(jax.random.key(0), jnp.zeros((1, 16, 16, 1)), train=False)
