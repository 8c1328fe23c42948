"""Many seeds in one compiled program: `config.train.num_seeds = N`.

Run i (0 <= i < N) is the run of `config.seed + i`, the same as a separate run
with that seed: its own initial parameters, noise and evaluation samples (the
keys of seed config.seed + i), and its own data order (a separate input
stream seeded config.seed + i; one stream of N*B split N ways would not match
the single runs). The trainer's pure functions are vmapped over a leading seed
axis of the state and of the batch, shape (N, n_critic, B, ...).

Sharding: the seed axis is sharded over the mesh's `data` axis, so each device
trains N / devices whole runs and the step needs no communication (a seed's
batch is not split across devices; this is for models small enough that one
device holds a run). N must therefore be divisible by the data-axis size.
Replicating the seeds instead would make every device compute every seed.

Metrics: every metric is reported per seed as `KEY/seed_S` (S the run's seed,
so `--config.seed=S` reproduces it alone), and over the seeds as `KEY` (mean)
and `KEY_se` (standard error of the mean, std with ddof 1 / sqrt(N)).
"""

from typing import Any

import jax
import numpy as np


def seed_list(config) -> list[int]:
  return [config.seed + i for i in range(config.train.num_seeds)]


def keys(seeds: list[int]) -> jax.Array:
  """(N,) typed PRNG keys, key i = jax.random.key(seeds[i])."""
  return jax.vmap(jax.random.key)(np.asarray(seeds, np.uint32))


def summarize(per_seed: dict[str, Any], seeds: list[int]) -> dict[str, float]:
  """{k: (N,) values} -> mean `k`, standard error `k_se`, `k/seed_S` each.

  Values that are not per seed (scalars) pass through unchanged.
  """
  out: dict[str, float] = {}
  for k, v in per_seed.items():
    v = np.asarray(v, np.float64)
    if v.ndim == 0:
      out[k] = float(v)
      continue
    out[k] = float(np.mean(v))
    out[f"{k}_se"] = (float(np.std(v, ddof=1) / np.sqrt(len(v)))
                      if len(v) > 1 else 0.0)
    out.update({f"{k}/seed_{s}": float(x) for s, x in zip(seeds, v)})
  return out


class SeedTrainer:
  """A trainer's pure functions over a leading seed axis of state and batch.

  `init(keys)` takes (N,) keys; `sample(state, keys, n)` returns (N, n, ...);
  `eval_metrics(samples, real)` returns {name: (N,) array} (summarised by the
  loop with `summarize`); `eval_batch` (if the trainer has one) returns (N,)
  sums for one batch shared by all seeds.
  """

  def __init__(self, trainer, seeds: list[int]):
    self.inner = trainer
    self.seeds = list(seeds)
    self.info = trainer.info
    self.batches_per_step = trainer.batches_per_step
    if hasattr(trainer, "eval_batch"):
      self.eval_batch = jax.vmap(trainer.eval_batch, in_axes=(0, None))

  def init(self, keys: jax.Array):
    return jax.vmap(self.inner.init)(keys)

  def train_step(self, state, batch: dict[str, jax.Array]):
    return jax.vmap(self.inner.train_step)(state, batch)

  def sample(self, state, keys: jax.Array, n: int) -> jax.Array:
    return jax.vmap(lambda s, k: self.inner.sample(s, k, n))(state, keys)

  def eval_metrics(self, samples: np.ndarray,
                   real: np.ndarray) -> dict[str, np.ndarray]:
    per_seed = [self.inner.eval_metrics(s, real) for s in samples]
    return {k: np.array([m[k] for m in per_seed]) for k in per_seed[0]}


class SeedStreams:
  """N input streams as one: each batch is (n_local_seeds, B, ...).

  Multi-process: this process feeds the seeds on its devices, a contiguous
  block (`jax.make_array_from_process_local_data` then assembles the global
  (N, ...) array).
  """

  def __init__(self, dataset, seeds: list[int], batch_size: int,
               process_index: int = 0, process_count: int = 1):
    per = len(seeds) // process_count
    self.seeds = seeds[process_index * per:(process_index + 1) * per]
    self._streams = [dataset.train_stream(seed=s, local_batch_size=batch_size,
                                          process_index=0, process_count=1)
                     for s in self.seeds]

  def __iter__(self):
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    batches = [next(s) for s in self._streams]
    return {k: np.stack([b[k] for b in batches]) for k in batches[0]}

  def get_state(self) -> dict[str, Any]:
    return {"seeds": [s.get_state() for s in self._streams]}

  def set_state(self, state: dict[str, Any]) -> None:
    for s, st in zip(self._streams, state["seeds"]):
      s.set_state(st)
