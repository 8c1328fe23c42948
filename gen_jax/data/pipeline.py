"""Grain pipelines over random-access examples, one batch per grain element.

A file-backed dataset supplies one function, `load(ids, rng) -> Batch`, that
reads and decodes the examples `ids` (a sorted int64 array) in one vectorised
call. This module turns it into the `base.Stream` and eval iterators:

  grain.MapDataset.source(GlobalBatches)   element k: this process's ids of
                                           global batch k
    .map(load)                             read + decode + scale, one batch
    .to_iter_dataset(ReadOptions)          `num_threads` batches in flight
    [.mp_prefetch(num_workers)]            optional worker processes

Shuffling is a numpy permutation per epoch, drawn from `[seed, epoch]`, over
all examples; global batch k is a contiguous slice of it and process p takes
rows [p * local, (p + 1) * local) of that slice. So the sequence of global
batches does not depend on the number of processes, and each process reads
only its own rows. The partial last batch of an epoch is dropped.

The resumable state is the grain iterator's, i.e. the index of the next
global batch; it is a small JSON-serialisable dict.
"""

import base64
import dataclasses
import sys
from collections.abc import Callable, Iterator
from typing import Any

import grain
import numpy as np
from absl import flags

from gen_jax.data.base import Batch, pad_batch
from gen_jax.errors import DataError

# load(ids, rng) -> batch; rng is None unless the dataset draws randomness
# (dynamic binarization).
LoadFn = Callable[[np.ndarray, np.random.Generator | None], Batch]

# Separates the binarization draws of eval passes from those of training.
_EVAL_SEED = 0x5EED


@dataclasses.dataclass(frozen=True)
class LoaderOptions:
  """How much work runs ahead of the training step.

  Attributes:
    num_threads: batches decoded concurrently in each process
      (grain ReadOptions.num_threads); 0 decodes on `next()`.
    prefetch: decoded batches buffered ahead (ReadOptions.prefetch_buffer_size).
    num_workers: worker processes (grain mp_prefetch); 0 keeps decoding in the
      training process, which is enough for 28x28 and 32x32 data.
  """
  num_threads: int = 4
  prefetch: int = 8
  num_workers: int = 0

  @classmethod
  def from_config(cls, cfg) -> "LoaderOptions":
    get = cfg.get if hasattr(cfg, "get") else (lambda k, d: d)
    return cls(num_threads=int(get("num_threads", cls.num_threads)),
               prefetch=int(get("prefetch", cls.prefetch)),
               num_workers=int(get("num_workers", cls.num_workers)))


class GlobalBatches:
  """Grain source: element k is this process's example ids of batch k.

  Endless (its length is sys.maxsize, as for grain's `repeat()`), so that the
  element index is the global batch count and the grain state says where the
  stream is. Picklable, for grain's worker processes.
  """

  def __init__(self, num_examples: int, *, seed: int, local_batch_size: int,
               process_index: int, process_count: int, salt: tuple = ()):
    self._n = num_examples
    self._seed = seed
    self._salt = tuple(salt)  # another stream of permutations, same seed
    self._local = local_batch_size
    self._global = local_batch_size * process_count
    self._offset = process_index * local_batch_size
    self.batches_per_epoch = num_examples // self._global
    self._perms: dict[int, np.ndarray] = {}

  def __len__(self) -> int:
    return sys.maxsize

  def _perm(self, epoch: int) -> np.ndarray:
    # Reader threads ask for neighbouring batches, so two epochs suffice;
    # a race only computes the same permutation twice.
    perm = self._perms.get(epoch)
    if perm is None:
      perm = np.random.default_rng(
          [self._seed, epoch, *self._salt]).permutation(self._n)
      self._perms = {e: p for e, p in self._perms.items() if e >= epoch - 1}
      self._perms[epoch] = perm
    return perm

  def __getitem__(self, k: int) -> tuple[int, np.ndarray]:
    epoch, i = divmod(int(k), self.batches_per_epoch)
    # The global batch sorted (locality for reads), then this process's rows:
    # put together, the processes' rows are the 1-process batch in the same
    # order, which matters as rows are paired with noise by position.
    rows = np.sort(self._perm(epoch)[i * self._global:(i + 1) * self._global])
    return int(k), rows[self._offset:self._offset + self._local]


class _LoadTrain:
  """grain map: (k, ids) -> batch, with binarization drawn from (seed, k)."""

  def __init__(self, load: LoadFn, seed: int, process_index: int,
               random: bool):
    self._load = load
    self._seed = seed
    self._process_index = process_index
    self._random = random

  def __call__(self, element: tuple[int, np.ndarray]) -> Batch:
    k, ids = element
    rng = (np.random.default_rng([self._seed, k, self._process_index])
           if self._random else None)
    return self._load(ids, rng)


def _read(dataset: grain.MapDataset, options: LoaderOptions) -> grain.IterDataset:
  read = grain.ReadOptions(num_threads=options.num_threads,
                           prefetch_buffer_size=options.prefetch)
  it = dataset.to_iter_dataset(read)
  if options.num_workers > 0:
    # grain's workers read absl flags: outside `app.run` (scripts, tests)
    # they would raise UnparsedFlagAccessError, so default them.
    if not flags.FLAGS.is_parsed():
      flags.FLAGS.mark_as_parsed()
    it = it.mp_prefetch(grain.MultiprocessingOptions(
        num_workers=options.num_workers))
  return it


def _to_json(tree: Any) -> Any:
  """grain states may hold bytes and int-keyed dicts; JSON holds neither.

  bytes -> {'__b64__': str}; a dict with a non-str key -> {'__items__':
  [[key, value], ...]}, so that `_from_json` gives back the same tree.
  """
  if isinstance(tree, bytes):
    return {"__b64__": base64.b64encode(tree).decode("ascii")}
  if isinstance(tree, dict):
    if all(isinstance(k, str) for k in tree):
      return {k: _to_json(v) for k, v in tree.items()}
    return {"__items__": [[_to_json(k), _to_json(v)] for k, v in tree.items()]}
  if isinstance(tree, (list, tuple)):
    return [_to_json(v) for v in tree]
  if isinstance(tree, np.integer):
    return int(tree)
  return tree


def _from_json(tree: Any) -> Any:
  if isinstance(tree, dict):
    if set(tree) == {"__b64__"}:
      return base64.b64decode(tree["__b64__"])
    if set(tree) == {"__items__"}:
      return {_from_json(k): _from_json(v) for k, v in tree["__items__"]}
    return {k: _from_json(v) for k, v in tree.items()}
  if isinstance(tree, list):
    return [_from_json(v) for v in tree]
  return tree


class GrainStream:
  """`base.Stream` over a grain iterator; state is the grain state as JSON."""

  def __init__(self, dataset: grain.IterDataset):
    self._iter = iter(dataset)

  def __iter__(self) -> "GrainStream":
    return self

  def __next__(self) -> Batch:
    return next(self._iter)

  def get_state(self) -> dict[str, Any]:
    return {"grain": _to_json(self._iter.get_state())}

  def set_state(self, state: dict[str, Any]) -> None:
    self._iter.set_state(_from_json(state["grain"]))


def train_stream(load: LoadFn, num_examples: int, *, name: str, seed: int,
                 local_batch_size: int, process_index: int,
                 process_count: int, options: LoaderOptions,
                 random: bool = False, salt: tuple = ()) -> GrainStream:
  """Endless epoch-shuffled batches of `load`ed examples (see module doc).
  A non-empty `salt` (ints) draws other permutations from the same seed
  (the second domain of an unpaired dataset)."""
  if not 0 <= process_index < process_count:
    raise ValueError(f"process_index {process_index} is not in "
                     f"[0, {process_count})")
  global_batch = local_batch_size * process_count
  if global_batch > num_examples:
    raise DataError(f"{name}: the global batch of {global_batch} exceeds its "
                    f"{num_examples} training examples")
  source = GlobalBatches(num_examples, seed=seed,
                         local_batch_size=local_batch_size,
                         process_index=process_index,
                         process_count=process_count, salt=salt)
  dataset = grain.MapDataset.source(source).map(
      _LoadTrain(load, seed, process_index, random))
  return GrainStream(_read(dataset, options))


class _LoadEval:
  """grain map: global batch k -> this process's rows of it, padded."""

  def __init__(self, load: LoadFn, num_examples: int, local_batch_size: int,
               process_index: int, process_count: int, random: bool):
    self._load = load
    self._n = num_examples
    self._local = local_batch_size
    self._global = local_batch_size * process_count
    self._process_index = process_index
    self._random = random

  def __call__(self, k: int) -> Batch:
    lo = min(self._n, k * self._global + self._process_index * self._local)
    hi = min(self._n, lo + self._local)
    ids = np.arange(lo, hi, dtype=np.int64)
    # A fixed draw: every eval pass binarizes an example the same way.
    rng = (np.random.default_rng([_EVAL_SEED, k, self._process_index])
           if self._random else None)
    if len(ids) == 0:  # this process's rows all lie past the end
      batch = self._load(np.zeros((1,), np.int64), rng)
      batch = {key: v[:0] for key, v in batch.items()}
    else:
      batch = self._load(ids, rng)
    return pad_batch(batch, self._local)


def eval_batches(load: LoadFn, num_examples: int, *, local_batch_size: int,
                 process_index: int, process_count: int,
                 options: LoaderOptions,
                 random: bool = False) -> Iterator[Batch]:
  """One pass over examples 0..num_examples-1 in order, padded with `mask`.

  Global batch k holds examples [k * G, (k + 1) * G); every process yields
  the same number of batches, the last ones padded.
  """
  global_batch = local_batch_size * process_count
  num_batches = -(-num_examples // global_batch)
  dataset = grain.MapDataset.range(num_batches).map(_LoadEval(
      load, num_examples, local_batch_size, process_index, process_count,
      random))
  # Worker processes would cost more to start than one pass saves.
  return iter(_read(dataset, dataclasses.replace(options, num_workers=0)))


class StreamingDataset:
  """A `base.Dataset` whose examples are read on demand by `load` functions.

  Args:
    info: the dataset's static facts; `num_train` and `num_eval` are the
      numbers of ids `train_load` and `eval_load` accept.
    train_load, eval_load: read examples by id (see `LoadFn`).
    options: threads, prefetch and worker processes of the reader.
    random: the loads draw randomness (dynamic binarization), so they are
      given a seeded generator.
  """

  def __init__(self, info, *, train_load: LoadFn, eval_load: LoadFn | None,
               options: LoaderOptions, random: bool = False):
    self.info = info
    self._train_load = train_load
    self._eval_load = eval_load
    self._options = options
    self._random = random

  def train_stream(self, *, seed: int, local_batch_size: int,
                   process_index: int, process_count: int) -> GrainStream:
    return train_stream(self._train_load, self.info.num_train,
                        name=self.info.name, seed=seed,
                        local_batch_size=local_batch_size,
                        process_index=process_index,
                        process_count=process_count, options=self._options,
                        random=self._random)

  def eval_batches(self, *, local_batch_size: int, process_index: int,
                   process_count: int) -> Iterator[Batch]:
    if self._eval_load is None or self.info.num_eval == 0:
      return iter(())
    return eval_batches(self._eval_load, self.info.num_eval,
                        local_batch_size=local_batch_size,
                        process_index=process_index,
                        process_count=process_count, options=self._options,
                        random=self._random)
