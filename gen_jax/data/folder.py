"""`folder:PATH`: every PNG and JPEG under a directory, as an image dataset.

Each image is converted to RGB, centre-cropped to its largest square and
resized (bilinear) to `image_size` x `image_size`, then scaled to
`value_range` (and binarized if `binarize`). Files are found recursively and
sorted by path; a fixed 1 in 20 of them (none below 20 images) are held out
for evaluation. PATH may be local or any path etils.epath opens (gs://...).
"""

import numpy as np
from etils import epath
from PIL import Image

from gen_jax.data import images as images_lib
from gen_jax.data import pipeline
from gen_jax.data.base import Batch, DatasetInfo
from gen_jax.errors import ConfigError, DataError

SUFFIXES = (".png", ".jpg", ".jpeg")
_EVAL_EVERY = 20  # hold out num_images // 20


def list_images(root: epath.Path) -> list[epath.Path]:
  """The files under `root` whose suffix is an image's, sorted by path."""
  found = []
  # iterdir, not rglob: epath refuses recursive globs (thousands of GCS RPCs).
  for p in root.iterdir():
    if p.is_dir():
      found.extend(list_images(p))
    elif p.suffix.lower() in SUFFIXES:
      found.append(p)
  return sorted(found)


def _readable(path: epath.Path) -> bool:
  try:
    with path.open("rb") as f, Image.open(f) as img:
      img.verify()  # reads the header and checksums, not the pixels
    return True
  except Exception:  # pylint: disable=broad-except  # any unreadable file
    return False


def load_image(path: epath.Path, size: int) -> np.ndarray:
  """(size, size, 3) uint8: RGB, centred square crop, bilinear resize."""
  try:
    with path.open("rb") as f, Image.open(f) as img:
      # JPEG decodes straight to a reduced size that is still >= size on
      # both sides: large photos decode several times faster.
      img.draft("RGB", (size, size))
      return images_lib.square_resize(img.convert("RGB"), size)
  except (OSError, ValueError, SyntaxError) as e:
    raise DataError(f"folder dataset: cannot read image {path}: {e}") from None


class FolderLoader:
  """Reads images by id (index into `files`) into a processed batch."""

  def __init__(self, files: list[epath.Path], image_size: int, value_range):
    self._files = files
    self._size = image_size
    self._range = tuple(value_range)

  def __call__(self, ids: np.ndarray, rng) -> Batch:
    images = np.stack([load_image(self._files[i], self._size) for i in ids])
    return {"x": images_lib.process(images, image_size=self._size,
                                    value_range=self._range, rng=rng)}


def folder(cfg) -> pipeline.StreamingDataset:
  """The dataset `folder:PATH` configured by `config.data`."""
  path = cfg.name.split(":", 1)[1] if ":" in cfg.name else ""
  if not path:
    raise ConfigError("config.data.name='folder:PATH' needs a PATH, e.g. "
                      "'folder:/data/faces'")
  if cfg.get("image_size") is None:
    raise ConfigError("config.data.image_size must be set for folder datasets")
  image_size = int(cfg.image_size)
  root = epath.Path(path).expanduser()
  if not root.is_dir():
    raise DataError(f"folder dataset: {root} is not a directory")
  files = list_images(root)
  # Checking one header is enough to catch a wrong folder without reading
  # every file; a bad file later on fails with its name.
  if not any(_readable(p) for p in files):
    raise DataError(
        f"folder dataset: no readable PNG or JPEG images in {root} "
        f"({len(files)} files named *{', *'.join(SUFFIXES)})")
  perm = np.random.default_rng(0).permutation(len(files))
  held_out = np.zeros(len(files), bool)
  held_out[perm[:len(files) // _EVAL_EVERY]] = True
  train = [p for p, h in zip(files, held_out) if not h]
  eval_ = [p for p, h in zip(files, held_out) if h]
  value_range = tuple(float(v) for v in cfg.value_range)
  info = DatasetInfo(name=cfg.name, kind="image",
                     example_shape=(image_size, image_size, 3),
                     value_range=value_range, num_train=len(train),
                     num_eval=len(eval_), extras={"folder": str(root)})
  return pipeline.StreamingDataset(
      info, train_load=FolderLoader(train, image_size, value_range),
      eval_load=FolderLoader(eval_, image_size, value_range),
      options=pipeline.LoaderOptions.from_config(cfg),
      random=bool(cfg.get("binarize", False)))
