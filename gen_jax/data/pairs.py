"""Image-to-image datasets from files: paired folders and TFDS CycleGAN.

Batches follow `data/base.py`'s translation contract: `x` the target image,
`cond` the source, both (B, S, S, 3) in `value_range` at `image_size`.

- `folder_pairs:PATH` (paired, Pix2Pix): either PATH/A/ and PATH/B/ holding
  PNG or JPEG files of the same names (A = source, B = target), or PATH
  holding pix2pix's side-by-side images, the left half A and the right half
  B. Each half or file is centre-cropped to a square and resized (bilinear).
  A fixed 1 in 20 pairs (none below 20) is held out, as `folder:PATH` does.
- `cycle_gan:NAME` (unpaired, CycleGAN): TFDS `cycle_gan/NAME`
  (horse2zebra, apple2orange, summer2winter_yosemite, monet2photo, ...):
  `cond` from trainA, `x` from trainB, each shuffled on its own; held out:
  testA and testB, paired by index (no correspondence). Prepared once with
  `python -m gen_jax.prepare_data cycle_gan:NAME`, read through
  `tfds.data_source` and grain as the other TFDS datasets.
"""

import numpy as np
from etils import epath
from PIL import Image

from gen_jax.data import folder as folder_lib
from gen_jax.data import images as images_lib
from gen_jax.data import pipeline, tfds_data
from gen_jax.data.base import Batch, DatasetInfo
from gen_jax.errors import ConfigError, DataError

CYCLE_GAN_TFDS = "cycle_gan"


def _path_of(cfg, entry: str) -> str:
  path = cfg.name.split(":", 1)[1] if ":" in cfg.name else ""
  if not path:
    raise ConfigError(f"config.data.name='{entry}:...' needs what follows "
                      f"the colon, e.g. '{entry}:"
                      + ("/data/facades'" if entry == "folder_pairs"
                         else "horse2zebra'"))
  return path


def _open(path: epath.Path) -> Image.Image:
  try:
    with path.open("rb") as f, Image.open(f) as img:
      img.load()
      return img.convert("RGB")
  except (OSError, ValueError, SyntaxError) as e:
    raise DataError(f"folder_pairs: cannot read image {path}: {e}") from None


class PairLoader:
  """Reads pairs by id: (A file, B file), or (AB file, None) halves."""

  def __init__(self, pairs: list[tuple[epath.Path, epath.Path | None]],
               image_size: int, value_range):
    self._pairs = pairs
    self._size = image_size
    self._range = tuple(value_range)

  def _pair(self, a: epath.Path, b: epath.Path | None):
    if b is not None:
      return _open(a), _open(b)
    ab = _open(a)
    w, h = ab.size
    if w < 2:
      raise DataError(f"folder_pairs: {a} is too narrow to hold two halves")
    return ab.crop((0, 0, w // 2, h)), ab.crop((w // 2, 0, 2 * (w // 2), h))

  def __call__(self, ids: np.ndarray, rng) -> Batch:
    del rng
    a, b = zip(*(self._pair(*self._pairs[i]) for i in ids))
    unit = lambda ims: images_lib.to_value_range(np.stack([
        images_lib.square_resize(im, self._size) for im in ims]).astype(
            np.float32) / 255.0, self._range)
    return {"x": unit(b), "cond": unit(a)}


def _names(d: epath.Path) -> dict[str, epath.Path]:
  return {p.name: p for p in d.iterdir()
          if p.suffix.lower() in folder_lib.SUFFIXES}


def find_pairs(root: epath.Path) -> list[tuple[epath.Path, epath.Path | None]]:
  """The pairs under `root` (module docstring), sorted by name; DataError
  naming what is wrong (a missing A/ or B/, unmatched names, no images)."""
  if not root.is_dir():
    raise DataError(f"folder_pairs: {root} is not a directory")
  a_dir, b_dir = root / "A", root / "B"
  if a_dir.is_dir() or b_dir.is_dir():
    missing = [d.name for d in (a_dir, b_dir) if not d.is_dir()]
    if missing:
      raise DataError(f"folder_pairs: {root} has "
                      f"{'B/' if missing == ['A'] else 'A/'} but no "
                      f"{missing[0]}/ (paired images go in A/ and B/ under "
                      "the same names)")
    a, b = _names(a_dir), _names(b_dir)
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    if only_a or only_b:
      which = (f"{len(only_a)} in A/ only (e.g. {only_a[0]})" if only_a
               else f"{len(only_b)} in B/ only (e.g. {only_b[0]})")
      raise DataError(f"folder_pairs: the names in {a_dir} and {b_dir} "
                      f"differ: {which}")
    if not a:
      raise DataError(f"folder_pairs: no PNG or JPEG images in {a_dir}")
    return [(a[n], b[n]) for n in sorted(a)]
  files = [p for p in folder_lib.list_images(root)]
  if not files:
    raise DataError(f"folder_pairs: {root} has neither A/ and B/ folders nor "
                    "side-by-side AB images (PNG or JPEG)")
  return [(p, None) for p in files]


def folder_pairs(cfg) -> pipeline.StreamingDataset:
  root = epath.Path(_path_of(cfg, "folder_pairs")).expanduser()
  pairs = find_pairs(root)
  PairLoader(pairs, 4, (0.0, 1.0))(np.arange(1), None)  # fail early
  perm = np.random.default_rng(0).permutation(len(pairs))
  held = np.zeros(len(pairs), bool)
  held[perm[:len(pairs) // folder_lib._EVAL_EVERY]] = True  # noqa: SLF001
  train = [p for p, h in zip(pairs, held) if not h]
  eval_ = [p for p, h in zip(pairs, held) if h]
  size = int(cfg.image_size)
  vr = tuple(float(v) for v in cfg.value_range)
  info = DatasetInfo(name=cfg.name, kind="image",
                     example_shape=(size, size, 3), value_range=vr,
                     num_train=len(train), num_eval=len(eval_),
                     extras={"paired": True, "cond_shape": (size, size, 3),
                             "folder": str(root)})
  return pipeline.StreamingDataset(
      info, train_load=PairLoader(train, size, vr),
      eval_load=PairLoader(eval_, size, vr) if eval_ else None,
      options=pipeline.LoaderOptions.from_config(cfg))


class DomainLoader:
  """Reads one CycleGAN domain's images by id into `key`."""

  def __init__(self, source, key: str, image_size: int, value_range):
    self._source, self._key = source, key
    self._size, self._range = image_size, tuple(value_range)

  def __call__(self, ids: np.ndarray, rng) -> Batch:
    records = self._source.__getitems__(ids.tolist())
    images = np.stack([r["image"] for r in records])
    if images.shape[-1] == 1:
      images = np.repeat(images, 3, axis=-1)
    return {self._key: images_lib.process(
        images, image_size=self._size, value_range=self._range, rng=rng,
        crop=images.shape[1] != images.shape[2])}


class UnpairedStreamingDataset:
  """Two domains read on demand: `x` (B) and `cond` (A), each with its own
  shuffle; eval pairs testA and testB by index."""

  def __init__(self, info: DatasetInfo, loads: dict, sizes: dict,
               options: pipeline.LoaderOptions):
    self.info = info
    self._loads, self._sizes, self._options = loads, sizes, options

  def train_stream(self, *, seed, local_batch_size, process_index,
                   process_count):
    from gen_jax.data.translation import UnpairedStream
    make = lambda key, salt: pipeline.train_stream(
        self._loads[key], self._sizes[key], name=self.info.name, seed=seed,
        local_batch_size=local_batch_size, process_index=process_index,
        process_count=process_count, options=self._options, salt=salt)
    return UnpairedStream.of(make("x", ()), make("cond", (1 << 21, 1)))

  def eval_batches(self, *, local_batch_size, process_index, process_count):
    n = self.info.num_eval
    both = [pipeline.eval_batches(
        self._loads[f"eval_{key}"], n, local_batch_size=local_batch_size,
        process_index=process_index, process_count=process_count,
        options=self._options) for key in ("x", "cond")]
    for bx, bc in zip(*both):
      yield {**bx, "cond": bc["cond"]}


def cycle_gan(cfg) -> UnpairedStreamingDataset:
  task = _path_of(cfg, "cycle_gan")
  tfds_name = f"{CYCLE_GAN_TFDS}/{task}"
  size = int(cfg.image_size)
  vr = tuple(float(v) for v in cfg.value_range)
  data_dir = tfds_data.resolve_data_dir(cfg.get("data_dir"))
  sources = {s: tfds_data.open_tfds(cfg.name, tfds_name, s, data_dir)
             for s in ("trainA", "trainB", "testA", "testB")}
  loads = {"x": DomainLoader(sources["trainB"], "x", size, vr),
           "cond": DomainLoader(sources["trainA"], "cond", size, vr),
           "eval_x": DomainLoader(sources["testB"], "x", size, vr),
           "eval_cond": DomainLoader(sources["testA"], "cond", size, vr)}
  sizes = {"x": len(sources["trainB"]), "cond": len(sources["trainA"])}
  num_eval = min(len(sources["testA"]), len(sources["testB"]))
  info = DatasetInfo(name=cfg.name, kind="image",
                     example_shape=(size, size, 3), value_range=vr,
                     num_train=max(sizes.values()), num_eval=num_eval,
                     extras={"paired": False, "cond_shape": (size, size, 3),
                             "data_dir": data_dir,
                             "num_train_a": sizes["cond"],
                             "num_train_b": sizes["x"]})
  return UnpairedStreamingDataset(info, loads, sizes,
                                  pipeline.LoaderOptions.from_config(cfg))
