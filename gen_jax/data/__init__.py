"""Datasets by name: `get_dataset(config.data)`.

Register a new dataset with `@DATASETS.register('name')` on a function that
takes `config.data` and returns an object following `base.Dataset`. A name
with a colon (`folder:PATH`) selects the entry before the colon.
"""

from gen_jax.data import embedded, folder, pairs, tfds_data, translation
from gen_jax.data.base import Batch, Dataset, DatasetInfo, Stream
from gen_jax.registry import Registry

DATASETS: Registry = Registry("config.data.name")
for _name in ("ring", "grid", "swiss_roll", "digits", "stacked_digits"):
  DATASETS.add(_name, getattr(embedded, _name))
for _name in tfds_data.SPECS:  # read from TFDS array_record files
  DATASETS.add(_name, tfds_data.tfds_dataset)
DATASETS.add("folder", folder.folder)
for _name in translation.TASKS:  # image-to-image: batches carry 'cond'
  DATASETS.add(_name, getattr(translation, _name))
DATASETS.add("folder_pairs", pairs.folder_pairs)  # folder_pairs:PATH
DATASETS.add("cycle_gan", pairs.cycle_gan)        # cycle_gan:horse2zebra


def dataset_factory(name: str):
  """The registered factory for `name` (the part before a colon)."""
  return DATASETS.get(name.split(":", 1)[0])


def get_dataset(data_config) -> Dataset:
  return dataset_factory(data_config.name)(data_config)


__all__ = ["DATASETS", "Batch", "Dataset", "DatasetInfo", "Stream",
           "get_dataset", "dataset_factory"]
