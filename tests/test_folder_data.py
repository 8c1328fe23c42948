"""`folder:PATH` datasets on a few generated PNG and JPEG files."""

import json

import ml_collections
import numpy as np
import pytest
from PIL import Image

from gen_jax import data
from gen_jax.errors import ConfigError, DataError


def data_config(path, **overrides):
  c = ml_collections.ConfigDict(dict(
      name=f"folder:{path}", batch_size=8, image_size=8,
      value_range=(-1.0, 1.0), binarize=False, data_dir="", num_threads=2,
      prefetch=2, num_workers=0))
  c.update(overrides)
  return c


@pytest.fixture
def folder(tmp_path):
  """21 images of several sizes and modes, one in a subfolder, plus noise."""
  rng = np.random.default_rng(0)
  for i in range(20):
    pixels = rng.integers(0, 256, (10 + i, 14, 3), dtype=np.uint8)
    suffix = ".png" if i % 2 else ".JPG"
    Image.fromarray(pixels).save(tmp_path / f"img{i:02d}{suffix}")
  (tmp_path / "sub").mkdir()
  Image.fromarray(np.full((9, 9), 7, np.uint8)).save(tmp_path / "sub/grey.png")
  (tmp_path / "notes.txt").write_text("not an image")
  return tmp_path


def test_images_are_found_cropped_resized_and_scaled(folder):
  ds = data.get_dataset(data_config(folder))
  assert ds.info.kind == "image" and ds.info.example_shape == (8, 8, 3)
  assert ds.info.num_train == 20 and ds.info.num_eval == 1  # 21 // 20 held out
  x = next(ds.train_stream(seed=0, local_batch_size=8, process_index=0,
                           process_count=1))["x"]
  assert x.shape == (8, 8, 8, 3) and x.dtype == np.float32
  assert -1.0 <= x.min() and x.max() <= 1.0 and x.std() > 0.1
  ev = list(ds.eval_batches(local_batch_size=4, process_index=0,
                            process_count=1))
  assert len(ev) == 1 and ev[0]["mask"].tolist() == [1, 0, 0, 0]


def test_centre_square_is_kept(tmp_path):
  # A wide image: white centre square, black side bands.
  pixels = np.zeros((20, 40, 3), np.uint8)
  pixels[:, 10:30] = 255
  Image.fromarray(pixels).save(tmp_path / "wide.png")
  ds = data.get_dataset(data_config(tmp_path, value_range=(0.0, 1.0)))
  x = next(ds.train_stream(seed=0, local_batch_size=1, process_index=0,
                           process_count=1))["x"]
  np.testing.assert_allclose(x, 1.0)


def test_stream_is_deterministic_and_resumes_from_json_state(folder):
  ds = data.get_dataset(data_config(folder, binarize=True))

  def stream():
    return ds.train_stream(seed=3, local_batch_size=4, process_index=0,
                           process_count=1)
  s = stream()
  batches = [next(s) for _ in range(7)]
  assert np.array_equal(batches[0]["x"], next(stream())["x"])
  assert set(np.unique(batches[0]["x"])) == {-1.0, 1.0}
  s = stream()
  for _ in range(4):
    next(s)
  resumed = stream()
  resumed.set_state(json.loads(json.dumps(s.get_state())))
  for expected in batches[4:]:
    np.testing.assert_array_equal(next(resumed)["x"], expected["x"])


def test_processes_get_disjoint_images(folder):
  ds = data.get_dataset(data_config(folder, value_range=(0.0, 1.0)))
  halves = [next(ds.train_stream(seed=0, local_batch_size=5, process_index=i,
                                 process_count=2))["x"].reshape(5, -1)
            for i in range(2)]
  assert not (halves[0][:, None] == halves[1][None]).all(-1).any()


def test_folder_without_readable_images_is_one_line(tmp_path):
  with pytest.raises(DataError) as e:
    data.get_dataset(data_config(tmp_path))
  assert "no readable PNG or JPEG images in" in str(e.value)
  assert str(tmp_path) in str(e.value) and "\n" not in str(e.value)
  (tmp_path / "broken.png").write_bytes(b"not a png")
  with pytest.raises(DataError, match="no readable PNG or JPEG"):
    data.get_dataset(data_config(tmp_path))
  with pytest.raises(DataError, match="is not a directory"):
    data.get_dataset(data_config(tmp_path / "missing"))
  with pytest.raises(ConfigError, match="needs a PATH"):
    data.get_dataset(data_config(""))


def test_unreadable_image_among_good_ones_is_named(folder):
  # Sorted first, so the check at construction passes on a later file; the
  # failure comes when a batch reads it.
  (folder / "aaa.png").write_bytes(b"truncated")
  ds = data.get_dataset(data_config(folder, num_threads=0, prefetch=0))
  s = ds.train_stream(seed=0, local_batch_size=21, process_index=0,
                      process_count=1)
  with pytest.raises(DataError, match="aaa.png"):
    next(s)


def test_worker_processes_give_the_same_resumable_stream(folder):
  def stream(**options):
    ds = data.get_dataset(data_config(folder, **options))
    return ds.train_stream(seed=1, local_batch_size=4, process_index=0,
                           process_count=1)
  in_process = [next(stream()) for _ in range(1)]
  s = stream(num_workers=1)
  first = [next(s) for _ in range(3)]
  state = json.loads(json.dumps(s.get_state()))
  rest = [next(s) for _ in range(2)]
  np.testing.assert_array_equal(first[0]["x"], in_process[0]["x"])
  resumed = stream(num_workers=1)
  resumed.set_state(state)
  for expected in rest:
    np.testing.assert_array_equal(next(resumed)["x"], expected["x"])
