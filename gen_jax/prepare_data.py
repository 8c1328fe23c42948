r"""Downloads and prepares a TFDS dataset as array_record files, once.

    python -m gen_jax.prepare_data NAME [--data_dir=DIR] [--image_size=S]

NAME is a TFDS-backed `config.data.name` (mnist, fashion_mnist, cifar10,
celeb_a, binarized_mnist, stacked_mnist, cycle_gan:horse2zebra, ...). DIR defaults to $TFDS_DATA_DIR, then
to ~/tensorflow_datasets; gs:// paths work. Training reads the result through
`tfds.data_source` without TensorFlow, but TFDS needs TensorFlow to *write*
it: install the extra with `pip install 'gen-jax[prepare]'`.

With `--image_size=S` it also stores the images processed at S pixels
(`gen_jax.data.resized`), which training then reads instead of decoding and
resizing every batch (CelebA at 64 px: see BENCHMARKS.md, "The whole loop").
That step needs no TensorFlow once the dataset is prepared.
"""

import importlib.util
import sys

from absl import app, flags

from gen_jax.errors import ConfigError, DataError, UserError

_DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "TFDS data directory; default $TFDS_DATA_DIR, then "
    "~/tensorflow_datasets.")
_IMAGE_SIZE = flags.DEFINE_integer(
    "image_size", None, "also store the images processed at this size "
    "(the config's data.image_size), read by training instead of resizing "
    "every batch.")


def prepare(name: str, data_dir: str | None = None) -> str:
  """Prepares dataset `name` in `data_dir`; returns the directory written."""
  # Imported here so that `--help` and flag errors stay fast.
  import tensorflow_datasets as tfds
  from gen_jax.data import tfds_data

  if name not in tfds_data.SPECS and not name.startswith("cycle_gan:"):
    raise ConfigError(
        f"prepare_data: {name!r} is not a TFDS dataset of gen_jax; one of: "
        f"{', '.join(sorted(tfds_data.SPECS))}, cycle_gan:NAME (folder "
        "datasets need no "
        "preparing)")
  data_dir = tfds_data.resolve_data_dir(data_dir)
  if importlib.util.find_spec("tensorflow") is None:
    raise DataError("prepare_data needs TensorFlow to write TFDS files: "
                    "pip install 'gen-jax[prepare]' (training does not)")
  tfds_name = tfds_data.tfds_name_of(name)
  builder = tfds.builder(tfds_name, data_dir=data_dir,
                         file_format="array_record")
  builder.download_and_prepare(file_format="array_record")
  return str(builder.data_dir)


def prepare_resized(name: str, image_size: int,
                    data_dir: str | None = None) -> str:
  """Stores dataset `name` processed at `image_size` (preparing the dataset
  first if it is not); returns the directory written."""
  from gen_jax.data import resized, tfds_data

  if name not in tfds_data.SPECS or tfds_data.SPECS[name].stacked:
    names = sorted(n for n, s in tfds_data.SPECS.items() if not s.stacked)
    raise ConfigError(f"prepare_data --image_size: {name!r} is not one of: "
                      f"{', '.join(names)}")
  if image_size <= 0:
    raise ConfigError(f"prepare_data: --image_size={image_size} must be "
                      "positive")
  data_dir = tfds_data.resolve_data_dir(data_dir)
  try:
    tfds_data.open_split(name, "train", data_dir)
  except DataError:
    prepare(name, data_dir)
  return resized.write(name, image_size, data_dir)


def main(argv: list[str]) -> None:
  if len(argv) != 2:
    raise app.UsageError("usage: python -m gen_jax.prepare_data NAME "
                         "[--data_dir=DIR] [--image_size=S]")
  try:
    if _IMAGE_SIZE.value is not None:
      path = prepare_resized(argv[1], _IMAGE_SIZE.value, _DATA_DIR.value)
    else:
      path = prepare(argv[1], _DATA_DIR.value)
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(e.exit_code)
  print(f"prepared {argv[1]} in {path}")


if __name__ == "__main__":
  app.run(main)
