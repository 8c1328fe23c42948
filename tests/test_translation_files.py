"""`folder_pairs:PATH` on generated image folders and `cycle_gan:NAME`
under the project's TFDS mock."""

import ml_collections
import numpy as np
import pytest
from PIL import Image

from gen_jax import data
from gen_jax.data.testing import mock_tfds_arrays
from gen_jax.errors import DataError


def data_config(name, **overrides):
  c = ml_collections.ConfigDict(dict(
      name=name, batch_size=8, image_size=8, value_range=(-1.0, 1.0),
      binarize=False, data_dir="", num_threads=2, prefetch=2,
      num_workers=0))
  c.update(overrides)
  return c


def first(ds, local=8, **kw):
  return next(ds.train_stream(seed=0, local_batch_size=local,
                              process_index=0, process_count=1, **kw))


def pair_pixels(i):
  """A 12x12 RGB source whose target is its colour inverse."""
  a = np.full((12, 12, 3), 10 * i, np.uint8)
  a[:, :6, 0] = 200
  return a, 255 - a


@pytest.fixture
def ab_folders(tmp_path):
  (tmp_path / "A").mkdir()
  (tmp_path / "B").mkdir()
  for i in range(21):
    a, b = pair_pixels(i)
    Image.fromarray(a).save(tmp_path / "A" / f"{i:03d}.png")
    Image.fromarray(b).save(tmp_path / "B" / f"{i:03d}.png")
  return tmp_path


def test_a_b_folders_keep_each_pair_together(ab_folders):
  ds = data.get_dataset(data_config(f"folder_pairs:{ab_folders}"))
  assert ds.info.extras == {"paired": True, "cond_shape": (8, 8, 3),
                            "folder": str(ab_folders)}
  assert (ds.info.num_train, ds.info.num_eval) == (20, 1)
  b = first(ds)
  assert b["x"].shape == b["cond"].shape == (8, 8, 8, 3)
  # Target = inverse of the source, in [-1, 1]: x = -cond (up to rounding).
  np.testing.assert_allclose(b["x"], -b["cond"], atol=2 / 255 + 1e-6)
  ev = next(ds.eval_batches(local_batch_size=4, process_index=0,
                            process_count=1))
  assert ev["mask"].tolist() == [1, 0, 0, 0]
  np.testing.assert_allclose(ev["x"][0], -ev["cond"][0], atol=2 / 255 + 1e-6)


def test_side_by_side_ab_images(tmp_path):
  for i in range(4):
    a, b = pair_pixels(i)
    Image.fromarray(np.concatenate([a, b], axis=1)).save(tmp_path / f"{i}.png",
                                                         )
  ds = data.get_dataset(data_config(f"folder_pairs:{tmp_path}"))
  b = first(ds, local=4)
  np.testing.assert_allclose(b["x"], -b["cond"], atol=2 / 255 + 1e-6)
  assert b["cond"][..., 0].max() > 0.5  # the red left half of the source


@pytest.mark.parametrize("damage,message", [
    ("no_b", "has A/ but no B/"),
    ("rename", "differ: 1 in A/ only \\(e.g. 000.png\\)"),
    ("unreadable", "cannot read image .*000.png"),
    ("empty", "neither A/ and B/ folders nor side-by-side"),
])
def test_bad_folders_are_one_line(ab_folders, tmp_path_factory, damage,
                                  message):
  root = ab_folders
  if damage == "no_b":
    for p in (root / "B").iterdir():
      p.unlink()
    (root / "B").rmdir()
  elif damage == "rename":
    (root / "B" / "000.png").rename(root / "B" / "zzz.png")
  elif damage == "unreadable":
    (root / "A" / "000.png").write_bytes(b"not a png")
  elif damage == "empty":
    root = tmp_path_factory.mktemp("empty")
  with pytest.raises(DataError, match=message) as e:
    ds = data.get_dataset(data_config(f"folder_pairs:{root}"))
    first(ds)
  assert "\n" not in str(e.value)


def cycle_splits():
  """Domain A: dark images; B: bright ones; sizes differ per split."""
  rng = np.random.default_rng(0)
  dark = lambda n: rng.integers(0, 50, (n, 12, 12, 3), dtype=np.uint8)
  bright = lambda n: rng.integers(200, 256, (n, 12, 12, 3), dtype=np.uint8)
  label = lambda n: np.zeros((n,), np.int64)
  return {"trainA": {"image": dark(24), "label": label(24)},
          "trainB": {"image": bright(32), "label": label(32)},
          "testA": {"image": dark(5), "label": label(5)},
          "testB": {"image": bright(7), "label": label(7)}}


def test_cycle_gan_tfds_is_unpaired_a_to_b():
  with mock_tfds_arrays(cycle_splits()):
    ds = data.get_dataset(data_config("cycle_gan:horse2zebra"))
    info = ds.info
    assert info.extras["paired"] is False
    assert info.extras["cond_shape"] == (8, 8, 3)
    assert (info.extras["num_train_a"], info.extras["num_train_b"]) == (24,
                                                                       32)
    assert info.num_eval == 5
    stream = ds.train_stream(seed=0, local_batch_size=8, process_index=0,
                             process_count=1)
    b = next(stream)
    assert b["cond"].max() < -0.5 and b["x"].min() > 0.5  # A dark, B bright
    for _ in range(2):
      next(stream)
    state = stream.get_state()
    expected = next(stream)
    again = ds.train_stream(seed=0, local_batch_size=8, process_index=0,
                            process_count=1)
    again.set_state(state)
    got = next(again)
    for k in ("x", "cond"):
      np.testing.assert_array_equal(expected[k], got[k])
    ev = list(ds.eval_batches(local_batch_size=4, process_index=0,
                              process_count=1))
    assert sum(int(e["mask"].sum()) for e in ev) == 5
    assert set(ev[0]) == {"x", "cond", "mask"}


def test_unprepared_cycle_gan_names_the_command(tmp_path):
  with pytest.raises(DataError, match="prepare_data cycle_gan:horse2zebra"):
    data.get_dataset(data_config("cycle_gan:horse2zebra",
                                 data_dir=str(tmp_path)))


def test_pix2pix_trains_on_a_folder_of_pngs(ab_folders, tmp_path_factory):
  """`folder_pairs:PATH` end to end: 2 steps of `configs/pix2pix.py` on the
  generated A/ and B/ PNGs (at 16 px: SSIM's window is 11 px), its
  held-out metrics and its picture."""
  from conftest import load_config
  from gen_jax import train
  c = load_config("pix2pix", f"folder_pairs:{ab_folders},small")
  c.data.image_size = 16
  c.train.update(num_steps=2, eval_every=2, checkpoint_every=2)
  workdir = tmp_path_factory.mktemp("run")
  final = train.train_and_evaluate(c, str(workdir))
  assert final["step"] == 2
  assert np.isfinite(final["eval/l1"]) and np.isfinite(final["eval/psnr"])
  picture = np.asarray(Image.open(workdir / "samples" / "step_0000002.png"))
  assert picture.shape[-1] == 3  # input | output | target of the 1 pair
