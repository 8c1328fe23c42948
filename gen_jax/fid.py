r"""Inception metrics of two image sets, and the one-time weights conversion.

    python -m gen_jax.fid A B [--weights=FILE] [--max_images=N] [--json=OUT]
    python -m gen_jax.fid convert pt_inception-2015-12-05-6726825d.pth OUT.npz

A is the set scored (generated samples), B the reference (real data); FID,
KID and density/coverage's radii treat B as the real set, precision is A's
fraction inside B's manifold. Each of A and B is:

- a folder: every PNG/JPEG under it (recursively), converted to RGB, all of
  one size (no crop or resize before the network's own resize to 299);
- an .npz with key `x` (N, H, W[, C]), C = 1 or 3, or an .npy of that array:
  uint8 means 0..255; floats mean [0, 1] if none is negative, else [-1, 1]
  (a key `value_range` = (low, high) overrides); an optional key `label`
  (N,) of class labels enables intra-class FID;
- a dataset of `gen_jax.data`: NAME[:SPLIT[:SIZE]], e.g. `cifar10:train`,
  `celeb_a:train:64`, `digits:test` (SPLIT train or test, default train;
  SIZE the resolution images are resized to first, default the dataset's
  native one, 16 for the embedded digits). Its features are cached
  (`gen_jax.metrics.inception.reference_features`).

Prints a Markdown table of the metrics and of the protocol. Weights: see
`gen_jax.metrics.inception` ($GEN_JAX_INCEPTION_WEIGHTS). Bad input: one line
on stderr, exit code 2.
"""

import dataclasses
import json
import pathlib
import sys
from collections.abc import Iterator

import numpy as np
from absl import app, flags

from gen_jax.errors import DataError, UserError
from gen_jax.metrics import inception as inc

_WEIGHTS = flags.DEFINE_string(
    "weights", None, f"Inception weights (.npz or .pth); default ${inc.ENV_VAR}"
    ", then the file in $GEN_JAX_CACHE/inception/.")
_MAX_IMAGES = flags.DEFINE_integer(
    "max_images", 0, "Use only the first N images of each set (0: all).")
_BATCH = flags.DEFINE_integer("batch_size", 50, "Images per network call.")
# Not --data_dir: gen_jax.prepare_data defines that flag, and both modules
# may be imported into one process.
_DATA_DIR = flags.DEFINE_string(
    "tfds_data_dir", None,
    "TFDS data directory (default: $TFDS_DATA_DIR or TFDS's own).")
_KID_SUBSET = flags.DEFINE_integer("kid_subset_size", 1000,
                                   "KID subset size (100 subsets).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the KID subsets.")
_JSON = flags.DEFINE_string("json", None,
                            "Also write {metrics, protocol} to this file.")
_NO_VERIFY = flags.DEFINE_bool(
    "no_verify", False, "convert: skip the sha256 check of the .pth.")

_FOLDER_CHUNK = 500
_EMBEDDED = {"digits": 16, "stacked_digits": 16}  # name: default image size


# --- reading a set ------------------------------------------------------------

@dataclasses.dataclass
class ImageSet:
  """Where a set's images come from; `features` runs the network."""
  spec: str
  kind: str  # 'folder', 'array' or 'dataset'
  chunks: Iterator  # of {'x': images, 'label'?: labels}
  value_range: tuple | None = None
  cache_key: dict | None = None


def _folder(path: pathlib.Path, max_images: int) -> ImageSet:
  from PIL import Image
  from gen_jax.data.folder import SUFFIXES, list_images
  from etils import epath
  files = list_images(epath.Path(path))
  if max_images:
    files = files[:max_images]
  if not files:
    raise DataError(f"{path}: no images (*{', *'.join(SUFFIXES)}) in it")

  def chunks():
    size = None
    for start in range(0, len(files), _FOLDER_CHUNK):
      images = []
      for f in files[start:start + _FOLDER_CHUNK]:
        try:
          with Image.open(f) as im:
            x = np.asarray(im.convert("RGB"))
        except (OSError, ValueError) as e:
          raise DataError(f"cannot read image {f}: {e}") from None
        size = size or x.shape
        if x.shape != size:
          raise DataError(
              f"{path}: images differ in size ({files[0].name} is "
              f"{size[1]}x{size[0]}, {f.name} {x.shape[1]}x{x.shape[0]}); "
              "resize them to one size first")
        images.append(x)
      yield {"x": np.stack(images)}
  return ImageSet(str(path), "folder", chunks())


def _array(path: pathlib.Path, max_images: int) -> ImageSet:
  try:
    if path.suffix == ".npy":
      data = {"x": np.load(path, allow_pickle=False)}
    else:
      with np.load(path, allow_pickle=False) as f:
        data = {k: f[k] for k in f.files}
  except Exception as e:  # pylint: disable=broad-except
    raise DataError(f"cannot read {path}: {e}") from None
  if "x" not in data:
    raise DataError(f"{path}: no key 'x' (it has: {', '.join(data)})")
  x = data["x"][:max_images or None]
  if x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[-1] not in (1, 3)):
    raise DataError(f"{path}: x has shape {x.shape}; expected (N, H, W) or "
                    "(N, H, W, C) with C = 1 or 3, channels last")
  if "value_range" in data:
    value_range = tuple(float(v) for v in data["value_range"])
  elif x.dtype == np.uint8:
    value_range = None
  elif not np.issubdtype(x.dtype, np.floating):
    raise DataError(f"{path}: x has dtype {x.dtype}; use uint8 or floats")
  else:
    lo, hi = float(x.min()), float(x.max())
    if lo < -1 or hi > 1:
      raise DataError(f"{path}: x spans [{lo:.3g}, {hi:.3g}]; floats must lie "
                      "in [0, 1] or [-1, 1] (or add a key value_range)")
    value_range = (0.0, 1.0) if lo >= 0 else (-1.0, 1.0)
  batch = {"x": x}
  label = data.get("label")
  if label is not None and label.ndim == 1:
    batch["label"] = label[:max_images or None]
  return ImageSet(str(path), "array", iter([batch]), value_range)


def _dataset(spec: str, max_images: int, data_dir: str | None) -> ImageSet:
  from gen_jax.data import tfds_data
  name, split, size = (spec.split(":") + ["", ""])[:3]
  split = split or "train"
  if split not in ("train", "test"):
    raise DataError(f"{spec}: split {split!r} is not one of: test, train")
  if name in tfds_data.SPECS:
    image_size = int(size or tfds_data.SPECS[name].native_size)
    batches = tfds_data.split_batches(name, split, image_size, data_dir,
                                      (0.0, 1.0))
    fingerprint = tfds_data.fingerprint(name, data_dir)
  elif name in _EMBEDDED:
    import ml_collections
    from gen_jax.data import dataset_factory
    image_size = int(size or _EMBEDDED[name])
    cfg = ml_collections.ConfigDict({
        "name": name, "image_size": image_size, "value_range": (0.0, 1.0),
        "binarize": False})
    arrays = dataset_factory(name)(cfg).arrays(split)
    batches = iter([arrays])
    fingerprint = ""
  else:
    raise DataError(
        f"{spec!r} is not a folder, an .npz/.npy file or a dataset (one of: "
        f"{', '.join(sorted([*tfds_data.SPECS, *_EMBEDDED]))})")
  if image_size <= 0:
    raise DataError(f"{spec}: image size {image_size} must be positive")

  def chunks():
    left = max_images or None
    for b in batches:
      if left is not None:
        b = {k: v[:left] for k, v in b.items()}
        left -= len(b["x"])
      if len(b["x"]):
        yield b
      if left == 0:
        return
  key = {"dataset": name, "split": split, "image_size": image_size,
         "fingerprint": fingerprint, "max_images": max_images}
  return ImageSet(spec, "dataset", chunks(), (0.0, 1.0), key)


def open_set(spec: str, *, max_images: int = 0,
             data_dir: str | None = None) -> ImageSet:
  """A folder, .npz/.npy file or dataset name (see the module docstring)."""
  path = pathlib.Path(spec).expanduser()
  if path.is_dir():
    return _folder(path, max_images)
  if path.is_file():
    if path.suffix not in (".npz", ".npy"):
      raise DataError(f"{spec}: a file must be .npz or .npy")
    return _array(path, max_images)
  if spec.endswith((".npz", ".npy")) or "/" in spec:
    raise DataError(f"{spec}: no such file or directory")
  return _dataset(spec, max_images, data_dir)


def set_features(inception: inc.Inception, image_set: ImageSet, *,
                 batch_size: int = 50) -> dict[str, np.ndarray]:
  if image_set.kind == "dataset":
    return inc.reference_features(inception, image_set.cache_key,
                                  image_set.chunks)
  return inc.batch_features(inception, image_set.chunks,
                            image_set.value_range, batch_size=batch_size)


# --- the commands -------------------------------------------------------------

_NAMES = [("fid", "FID"), ("kid", "KID"), ("kid_std", "KID std"),
          ("is", "IS (A)"), ("is_std", "IS std (A)"), ("is_real", "IS (B)"),
          ("is_real_std", "IS std (B)"), ("precision", "precision"),
          ("recall", "recall"), ("density", "density"),
          ("coverage", "coverage"), ("intra_fid", "intra-class FID")]


def markdown(metrics: dict, protocol: inc.Protocol) -> str:
  lines = ["| metric | value |", "|---|---|"]
  lines += [f"| {label} | {metrics[k]:.6g} |" for k, label in _NAMES
            if k in metrics]
  lines += ["", "| protocol | |", "|---|---|"]
  lines += [f"| {k} | {v} |" for k, v in dataclasses.asdict(protocol).items()]
  return "\n".join(lines)


def score(a: str, b: str, *, weights: str | None = None, max_images: int = 0,
          batch_size: int = 50, data_dir: str | None = None,
          kid_subset_size: int = 1000, seed: int = 0
          ) -> tuple[dict[str, float], inc.Protocol]:
  """(metrics, protocol) of set `a` against reference `b`."""
  sets = [open_set(s, max_images=max_images, data_dir=data_dir)
          for s in (a, b)]
  inception, message = inc.get_inception(weights)
  if inception is None:
    raise UserError(message)
  fake, real = (set_features(inception, s, batch_size=batch_size)
                for s in sets)
  for s, f in zip(sets, (fake, real)):
    if len(f["pool"]) < 2:
      raise DataError(f"{s.spec}: {len(f['pool'])} image(s); need at least 2")
  try:
    metrics = inc.inception_metrics(fake, real,
                                    kid_subset_size=kid_subset_size, seed=seed)
  except ValueError as e:  # e.g. a class with < 2 examples (intra-class FID)
    raise DataError(str(e)) from None
  protocol = inc.Protocol(reference=b, num_real=len(real["pool"]),
                          num_fake=len(fake["pool"]),
                          weights_sha256=inception.source_sha256)
  return metrics, protocol


def main(argv: list[str]) -> None:
  try:
    if len(argv) == 4 and argv[1] == "convert":
      digest = inc.convert(argv[2], argv[3], sha256_prefix=None
                           if _NO_VERIFY.value else inc.SHA256_PREFIX)
      print(f"wrote {argv[3]} (source sha256 {digest})")
      return
    if len(argv) != 3:
      raise UserError("usage: python -m gen_jax.fid A B, or python -m "
                      "gen_jax.fid convert IN.pth OUT.npz")
    metrics, protocol = score(
        argv[1], argv[2], weights=_WEIGHTS.value, max_images=_MAX_IMAGES.value,
        batch_size=_BATCH.value, data_dir=_DATA_DIR.value,
        kid_subset_size=_KID_SUBSET.value, seed=_SEED.value)
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(e.exit_code)
  print(markdown(metrics, protocol))
  if _JSON.value:
    with open(_JSON.value, "w") as f:
      json.dump({"metrics": metrics, "protocol": dataclasses.asdict(protocol),
                 "a": argv[1], "b": argv[2]}, f, indent=2)


if __name__ == "__main__":
  app.run(main)
